"""The playground's two small MLPs, their losses and their steps, one update at a time.

A :class:`Playground` owns G (latent -> plane) and D (plane -> one logit / critic score), their
optimisers and a seeded noise generator. The steps follow Goodfellow et al.'s Algorithm 1:

- :meth:`Playground.d_step`: a real batch from the target and a fake batch from G, *detached*
  (G gets no gradient), through D; one optimiser step of D only.
- :meth:`Playground.g_step`: a fresh fake batch through D (D's parameters frozen for the pass,
  no real samples); one optimiser step of G only.
- :meth:`Playground.step`: ``d_steps`` D steps, then one G step.

The losses (minimax, non-saturating, WGAN-GP, hinge) are the shared ones of
:mod:`advstudio.core.playground.losses`, the image GAN's too, with their table.
Hyper-parameters come in as a :class:`PlaygroundParams` and can change between any two steps
(:meth:`Playground.apply`).

Everything runs on the CPU: with a few thousand weights and batches of hundreds of 2-D points a
GPU only adds kernel-launch latency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from advstudio.core.errors import ConfigError
from advstudio.core.playground.losses import d_loss, g_loss, g_loss_per_sample, gradient_penalty
from advstudio.core.playground.targets import VIEW, Target

# the shared losses (losses.py) the playground offers; least squares is the image GAN's only
LOSSES = ("minimax", "non-saturating", "wgan-gp", "hinge")
OPTIMISERS = ("adam", "sgd", "rmsprop")
ADAM_BETAS = (0.5, 0.9)  # the usual GAN choice (Radford et al.: beta1 0.5; WGAN-GP: 0.9)
SGD_MOMENTUM = 0.0
MAX_BATCH = 8192
HEAT_RES = 64
MESH_RES = 21
MESH_EXTENT = 2.5  # the latent mesh spans [-2.5, 2.5] in the first two latent dims
DISPLAY_SAMPLES = 1000
ARROWS = 150


@dataclass(frozen=True)
class PlaygroundParams:
    """The hyper-parameters the user may change while training runs.

    ``target`` is the data distribution (swapping it keeps the networks, so one can watch G
    follow new data). Learning rates are per optimiser step; ``batch_size`` is real and fake
    samples per step each.

    ``gp_weight`` defaults to 1, not the 10 of Gulrajani et al. (tuned for images): on the
    8-Gaussian ring with 5 critic steps and Adam lr 1e-3, weight 1 covered all 8 modes after
    400-700 steps for 5 of 5 seeds, weight 10 after 1,000-2,100 steps.
    """

    target: Target | None = None
    loss: str = "non-saturating"
    optimiser: str = "adam"
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    d_steps: int = 1
    batch_size: int = 256
    gp_weight: float = 1.0  # see below

    def validated(self) -> PlaygroundParams:
        """Itself, or a :class:`ConfigError` that names the bad value."""
        if self.loss not in LOSSES:
            raise ConfigError(f"Unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}.")
        if self.optimiser not in OPTIMISERS:
            raise ConfigError(
                f"Unknown optimiser {self.optimiser!r}; choose one of {', '.join(OPTIMISERS)}."
            )
        for name in ("lr_g", "lr_d"):
            lr = getattr(self, name)
            if not (0 < lr <= 10) or lr != lr:
                raise ConfigError(
                    f"The learning rate {name} must be above 0 and at most 10 (got {lr})."
                )
        if not 1 <= self.d_steps <= 100:
            raise ConfigError(f"D steps per G step must be between 1 and 100 (got {self.d_steps}).")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ConfigError(
                f"The batch size must be between 1 and {MAX_BATCH:,} (got {self.batch_size})."
            )
        if not 0 <= self.gp_weight <= 1000:
            raise ConfigError(
                f"The gradient-penalty weight must be between 0 and 1000 (got {self.gp_weight})."
            )
        return self


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed tensor code on one intra-op thread, then restore the setting.

    The playground's operations are far too small to gain from more threads, and on a busy
    machine OpenMP workers spinning for a descheduled sibling made each step up to a hundred
    times slower (9 ms for a 64-unit linear layer). With PyTorch's OpenMP backend the setting
    belongs to the calling thread, so other threads and jobs keep theirs; it costs < 1 us.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mlp(
    n_in: int, n_out: int, hidden: int, depth: int, act: Callable[[], nn.Module]
) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


@dataclass
class Snapshot:
    """What the plot shows, as numpy float32 arrays in data units (the view box ``view``).

    ``real``, ``fake`` (n, 2): a fixed real sample and G's image of fixed noise. ``heat``
    (HEAT_RES, HEAT_RES): D over the view box, row i = y, column j = x, pixel centres; for the
    BCE losses and hinge it is sigmoid(D(x)); the WGAN-GP critic has no fixed offset or scale,
    so each pixel shows the rank of its score among the box's pixels (0 lowest, 1 highest):
    the critic's landscape, whose slopes move G, stays visible however its values drift (a
    linear scale was flat white or flat purple most of the time). In [0, 1] either way, high =
    "real". ``mesh`` (MESH_RES,
    MESH_RES, 2): G's image of a regular latent grid (first two latent dims, others 0).
    ``arrows`` (ARROWS, 2): minus the gradient of G's loss w.r.t. the first ``ARROWS`` fake
    points, where G's loss pushes them. ``moved`` (n, 2): where the fake points were before
    the update(s) being shown and ``phase`` which update it was ("d", "g"), set by a caller
    that steps by hand (None and "" otherwise).
    """

    step: int
    real: np.ndarray
    fake: np.ndarray
    heat: np.ndarray
    mesh: np.ndarray
    arrows: np.ndarray
    view: tuple[float, float, float, float] = VIEW
    moved: np.ndarray | None = None
    phase: str = ""


@dataclass(frozen=True)
class PlaygroundConfig:
    """How the networks are built: fixed for a playground's life (make a new one to change
    it). ``hidden`` units in each of ``depth`` hidden layers, for both G and D."""

    seed: int = 0
    latent_dim: int = 2
    hidden: int = 64
    depth: int = 3
    display_samples: int = DISPLAY_SAMPLES


class Playground:
    """G, D, their optimisers and the step functions. Not thread-safe: one thread at a time
    (the job's, or the UI thread's while the job is paused or not running)."""

    def __init__(self, params: PlaygroundParams, config: PlaygroundConfig | None = None) -> None:
        self.config = config or PlaygroundConfig()
        c = self.config
        if params.target is None:
            raise ConfigError("The playground needs a target distribution.")
        if not 1 <= c.latent_dim <= 64:
            raise ConfigError(f"The latent size must be between 1 and 64 (got {c.latent_dim}).")
        self.params = params.validated()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.G = mlp(c.latent_dim, 2, c.hidden, c.depth, nn.ReLU)
            self.D = mlp(2, 1, c.hidden, c.depth, lambda: nn.LeakyReLU(0.2))
        self.rng = torch.Generator().manual_seed(c.seed + 1)
        fixed = torch.Generator().manual_seed(c.seed + 2)
        self.z_display = torch.randn(c.display_samples, c.latent_dim, generator=fixed)
        ticks = torch.linspace(-MESH_EXTENT, MESH_EXTENT, MESH_RES)
        zz = torch.zeros(MESH_RES, MESH_RES, c.latent_dim)
        zz[..., 0] = ticks[None, :]
        if c.latent_dim > 1:
            zz[..., 1] = ticks[:, None]
        self.z_mesh = zz.reshape(-1, c.latent_dim)
        xmin, xmax, ymin, ymax = VIEW
        half_x = (xmax - xmin) / HEAT_RES / 2
        half_y = (ymax - ymin) / HEAT_RES / 2
        gx = torch.linspace(xmin + half_x, xmax - half_x, HEAT_RES)
        gy = torch.linspace(ymin + half_y, ymax - half_y, HEAT_RES)
        yy, xx = torch.meshgrid(gy, gx, indexing="ij")
        self.heat_points = torch.stack([xx.ravel(), yy.ravel()], 1)
        self.steps_done = 0  # G steps
        self.d_updates = 0
        self._set_real_display()
        self._build_optimisers()

    # -- parameters ---------------------------------------------------------------------------
    def _optimiser(self, net: nn.Module, lr: float) -> torch.optim.Optimizer:
        """Fused kernels (one call for all tensors, CPU too since PyTorch 2.4) where the
        optimiser has them: with a few small tensors per network, per-tensor Python overhead
        would otherwise dominate the step."""
        kind = self.params.optimiser
        if kind == "adam":
            return torch.optim.Adam(net.parameters(), lr=lr, betas=ADAM_BETAS, fused=True)
        if kind == "rmsprop":
            return torch.optim.RMSprop(net.parameters(), lr=lr, foreach=True)
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=SGD_MOMENTUM, fused=True)

    def _build_optimisers(self) -> None:
        self.opt_g = self._optimiser(self.G, self.params.lr_g)
        self.opt_d = self._optimiser(self.D, self.params.lr_d)

    def _set_real_display(self) -> None:
        gen = torch.Generator().manual_seed(self.config.seed + 3)
        self.real_display = self.params.target.sample(self.config.display_samples, gen)

    @property
    def target(self) -> Target:
        return self.params.target

    def apply(self, params: PlaygroundParams) -> None:
        """Use ``params`` from the next step on. A new optimiser kind rebuilds both optimisers
        (their state means nothing to another kind); a new learning rate is written into the
        existing optimiser, so Adam keeps its moment estimates and a lr change shows its own
        effect rather than that of a reset."""
        if params == self.params:
            return
        params.validated()
        if params.target is None:
            raise ConfigError("The playground needs a target distribution.")
        old, self.params = self.params, params
        if params.optimiser != old.optimiser:
            self._build_optimisers()
        else:
            for opt, lr in ((self.opt_g, params.lr_g), (self.opt_d, params.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr
        if params.target is not old.target:
            self._set_real_display()

    def with_params(self, **changes) -> None:
        """``apply`` of the current parameters with ``changes`` (e.g. ``loss="hinge"``)."""
        self.apply(replace(self.params, **changes))

    # -- steps --------------------------------------------------------------------------------
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, generator=self.rng)

    def d_step(self) -> dict[str, float]:
        """One update of D on a real batch and a detached fake batch; G does not change.

        Values: ``loss_d`` (with the gradient penalty for WGAN-GP, also given alone as ``gp``),
        ``d_real`` and ``d_fake``, the mean sigmoid of D's output on the two batches (for
        WGAN-GP the critic's score has no fixed scale: only the gap between them means
        something)."""
        p = self.params
        real = p.target.sample(p.batch_size, self.rng)
        with torch.no_grad():
            fake = self.G(self._noise(p.batch_size))
        out = self.D(torch.cat([real, fake]))
        real_out, fake_out = out[: len(real)], out[len(real) :]
        loss = d_loss(p.loss, real_out, fake_out)
        gp = torch.zeros(())
        if p.loss == "wgan-gp":
            eps = torch.rand(len(real), 1, generator=self.rng)
            gp = gradient_penalty(self.D, real, fake, eps)
            loss = loss + p.gp_weight * gp
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.d_updates += 1
        with torch.no_grad():  # one conversion to Python for all four numbers
            loss_d, d_real, d_fake, gp_value = torch.stack(
                [loss, torch.sigmoid(real_out).mean(), torch.sigmoid(fake_out).mean(), gp]
            ).tolist()
        values = {"loss_d": loss_d, "d_real": d_real, "d_fake": d_fake}
        if p.loss == "wgan-gp":
            values["gp"] = gp_value
        return values

    def g_step(self) -> dict[str, float]:
        """One update of G through D (frozen for this pass), on fake samples only. Values:
        ``loss_g`` and ``d_fake_g``, the mean sigmoid of D on that batch before the update."""
        p = self.params
        self.D.requires_grad_(False)
        try:
            fake_out = self.D(self.G(self._noise(p.batch_size)))
            loss = g_loss(p.loss, fake_out)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.D.requires_grad_(True)
        self.opt_g.step()
        self.steps_done += 1
        with torch.no_grad():
            loss_g, d_fake = torch.stack([loss, torch.sigmoid(fake_out).mean()]).tolist()
        return {"loss_g": loss_g, "d_fake_g": d_fake}

    def step(self) -> dict[str, float]:
        """``d_steps`` D updates then one G update. Values: the last D step's, and G's."""
        values: dict[str, float] = {}
        for _ in range(self.params.d_steps):
            values = self.d_step()
        values.update(self.g_step())
        return values

    # -- looking ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self) -> np.ndarray:
        """G's image of the fixed display noise, (display_samples, 2): the points shown and
        measured (modes covered, quality)."""
        return self.G(self.z_display).numpy()

    def snapshot(self, arrows: bool = True) -> Snapshot:
        """Everything the plot needs, cheap (one D pass over 64x64 points, G on ~1,400 noise
        vectors, one backward pass for the arrows)."""
        with torch.no_grad():
            fake = self.G(self.z_display)
            mesh = self.G(self.z_mesh).reshape(MESH_RES, MESH_RES, 2)
            heat = self.D(self.heat_points).reshape(HEAT_RES, HEAT_RES)
            if self.params.loss == "wgan-gp":
                ranks = torch.empty(heat.numel())
                ranks[heat.ravel().argsort()] = torch.linspace(0, 1, heat.numel())
                heat = ranks.reshape(heat.shape)
            else:
                heat = torch.sigmoid(heat)
        if arrows:
            x = fake[:ARROWS].clone().requires_grad_(True)
            self.D.requires_grad_(False)
            try:
                (grad,) = torch.autograd.grad(
                    g_loss_per_sample(self.params.loss, self.D(x)).sum(), x
                )
            finally:
                self.D.requires_grad_(True)
            push = (-grad).numpy()
        else:
            push = np.zeros((0, 2), np.float32)
        return Snapshot(
            step=self.steps_done,
            real=self.real_display.numpy(),
            fake=fake.numpy(),
            heat=heat.numpy(),
            mesh=mesh.numpy(),
            arrows=push,
        )
