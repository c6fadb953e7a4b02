"""Training a GAN or DCGAN: the textbook step, and the job that runs it with events.

The step follows pytorch/examples ``dcgan/main.py`` (and Goodfellow et al.'s Algorithm 1):

1. Discriminator (``d_steps`` times): BCE-with-logits on a real batch against the target 1 (or
   ``1 - label_smoothing``), then on a fake batch from the generator, detached, against 0; one
   optimiser step. ``d_x`` = mean D(x), ``d_g_z1`` = mean D(G(z)) on that fake batch.
2. Generator: a *fresh* fake batch through D, no real images, against the target 1 (the
   non-saturating loss -log D(G(z))); one optimiser step of G only. ``d_g_z2`` = mean D(G(z)).

Images are scaled to [-1, 1] for training (the generator ends in tanh); samples, previews and
results are given back in [0, 1].
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.data import load_digits
from advstudio.core.devices import describe, pick_device
from advstudio.core.distributed import (batch_mean, check_batch, data_parallel, gather_rows,
                                        is_main, shard)
from advstudio.core.errors import ConfigError
from advstudio.core.gan.checkpoint import (describe_geometry, load_checkpoint,
                                          save_checkpoint)
from advstudio.core.gan.config import GanConfig
from advstudio.core.gan.evaluation import evaluate_digit_generator
from advstudio.core.gan.metrics import pairwise_distance_mean
from advstudio.core.gan.networks import build_networks
from advstudio.core.gan.sampling import generate, sample_grid, to_signed
from advstudio.core.jobs import Event, Log, Metrics, Preview, Throttle, relay
from advstudio.core.training import (CheckpointFile, Divergence, Plan, check_pixels, fit,
                                     keeping_logs)

PREVIEW_SAMPLES = 64
DRY_RUN_BATCH = 8
PREVIEW_BUDGET = 0.05  # share of the training time previews may take
STEP_KEYS = ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "grad_norm_d", "grad_norm_g",
             "diversity")
DIVERGENCE_ADVICE = "Lower learning rates or label smoothing usually help."


@dataclass
class GanResult:
    """What :func:`train_gan` returns.

    ``metrics``: the last step's scalars; ``evaluation``: the last evaluation ({} when none ran);
    ``history``: every evaluation, each with its ``step``; ``generator_state``: the generator's
    ``state_dict`` on the CPU; ``samples``: the final grid of the fixed-noise samples, float32 in
    [0, 1] (H, W) or (H, W, 3); ``checkpoint_path``: the last checkpoint written ("" if none).
    """

    config: GanConfig
    step: int
    metrics: dict[str, float]
    evaluation: dict[str, float]
    history: list[dict[str, float]]
    generator_state: dict[str, torch.Tensor]
    samples: np.ndarray
    checkpoint_path: str = ""
    logs: list[str] = field(default_factory=list)


def _grad_norm(net: nn.Module) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in net.parameters() if p.grad is not None])


class GanTrainer:
    """Networks, optimisers, noise and data order of one run, with the training step.

    ``images`` are float32 in [-1, 1], (N, C, H, W), on the CPU; batches move to ``device`` one
    at a time. Every random draw after initialisation (noise, data order) comes from one
    ``torch.Generator`` seeded with ``config.seed`` whose state goes into checkpoints, so a
    resumed run repeats an uninterrupted one exactly; the global RNG is left alone.

    Under ``torchrun`` (see :mod:`advstudio.core.distributed`) every process draws the whole
    batch's data order and noise and trains on its rows, through ``g_parallel`` and
    ``d_parallel`` (the networks in ``DistributedDataParallel``, BatchNorm synchronised);
    ``generator`` and ``discriminator`` themselves serve sampling and the state dicts.
    """

    def __init__(self, config: GanConfig, images: torch.Tensor,
                 device: str | torch.device = "cpu", batch_size: int | None = None) -> None:
        self.config = config
        self.device = torch.device(device)
        self.images = images
        self.batch_size = batch_size or config.batch_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            g, d = build_networks(config.arch, config.latent_dim, config.channels,
                                  config.image_size)
        self.generator = g.to(self.device).train()
        self.discriminator = d.to(self.device).train()
        # the networks themselves in a single process
        self.g_parallel = data_parallel(self.generator, self.device)
        self.d_parallel = data_parallel(self.discriminator, self.device)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.criterion = nn.BCEWithLogitsLoss()
        self.real_target = 1.0 - config.label_smoothing
        self.rng = torch.Generator().manual_seed(config.seed)
        self.fixed_noise = self._draw(PREVIEW_SAMPLES)
        self.step = 0
        self._order = torch.randperm(len(images), generator=self.rng)
        self._cursor = 0

    @property
    def geometry(self) -> dict[str, Any]:
        c = self.config
        return {"arch": c.arch, "image_size": c.image_size, "channels": c.channels,
                "latent_dim": c.latent_dim}

    def _draw(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), (n, latent_dim), drawn on the CPU (same numbers on every device)."""
        return torch.randn(n, self.config.latent_dim, generator=self.rng)

    def noise(self, n: int) -> torch.Tensor:
        """``n`` noise vectors on the device; in a data-parallel run this process's rows of
        them (every process draws all ``n``, so the generators stay in step)."""
        return shard(n).take(self._draw(n)).to(self.device)

    def real_batch(self) -> torch.Tensor:
        """The next ``batch_size`` real images (this process's rows of them in a data-parallel
        run): epochs over a shuffled order, last partial batch of each epoch dropped (BatchNorm
        and the losses assume full batches)."""
        b = self.batch_size
        if self._cursor + b > len(self._order):
            self._order = torch.randperm(len(self.images), generator=self.rng)
            self._cursor = 0
        idx = shard(b).take(self._order[self._cursor:self._cursor + b])
        self._cursor += b
        return self.images[idx].to(self.device, non_blocking=True)

    def d_step(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One discriminator update on ``real`` (:meth:`real_batch`) and ``batch_size`` fakes;
        returns (loss_d, d_x, d_g_z1, grad_norm_d) as 0-d tensors, this process's means."""
        d, crit = self.d_parallel, self.criterion
        part = shard(self.batch_size)
        self.discriminator.zero_grad(set_to_none=True)
        out_real = d(real)
        loss_real = crit(out_real, torch.full_like(out_real, self.real_target))
        part.scale(loss_real).backward()
        with torch.no_grad():  # G is not trained here: no graph through it
            fake = self.generator(self.noise(self.batch_size))
        out_fake = d(fake)
        loss_fake = crit(out_fake, torch.zeros_like(out_fake))
        part.scale(loss_fake).backward()
        grad_norm = _grad_norm(self.discriminator)  # DDP averaged the gradients already
        self.opt_d.step()
        return ((loss_real + loss_fake).detach(), torch.sigmoid(out_real.detach()).mean(),
                torch.sigmoid(out_fake.detach()).mean(), grad_norm)

    def g_step(self) -> tuple[torch.Tensor, ...]:
        """One generator update on fresh noise, with no real images; returns
        (loss_g, d_g_z2, grad_norm_g, fake) with ``fake`` the batch in [-1, 1], detached (this
        process's means and rows in a data-parallel run)."""
        g = self.generator
        g.zero_grad(set_to_none=True)
        fake = self.g_parallel(self.noise(self.batch_size))
        # D itself, not its DDP wrapper: its gradients from this pass are never used
        out = self.discriminator(fake)
        loss_g = self.criterion(out, torch.ones_like(out))  # non-saturating: -log D(G(z))
        shard(self.batch_size).scale(loss_g).backward()
        grad_norm = _grad_norm(g)
        self.opt_g.step()  # only G moves; D's gradients from this pass are cleared next d_step
        return loss_g.detach(), torch.sigmoid(out.detach()).mean(), grad_norm, fake.detach()

    def train_step(self) -> torch.Tensor:
        """``d_steps`` discriminator updates, then one generator update. Returns the step's
        scalars as one tensor in :data:`STEP_KEYS` order (one transfer to read them all); in a
        data-parallel run the whole batch's, on every process."""
        for _ in range(self.config.d_steps):
            loss_d, d_x, d_g_z1, gn_d = self.d_step(self.real_batch())
        loss_g, d_g_z2, gn_g, fake = self.g_step()
        part = shard(self.batch_size)
        means = batch_mean(torch.stack([loss_d, loss_g, d_x, d_g_z1, d_g_z2]), part)
        fake = gather_rows(fake, part)
        diversity = pairwise_distance_mean(fake) * 0.5  # distances in [0, 1] pixel units
        self.step += 1
        return torch.stack([*means, gn_d, gn_g, diversity])

    def samples(self) -> torch.Tensor:
        """The fixed-noise samples in [0, 1] on the CPU."""
        return generate(self.generator, self.fixed_noise)

    def sample_grid(self) -> np.ndarray:
        return sample_grid(self.samples(), nrow=8)

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs: tensors and plain values only (``weights_only`` safe)."""
        return {
            **self.geometry,
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "fixed_noise": self.fixed_noise,
            "rng_state": self.rng.get_state(),
            "data_order": self._order,
            "data_cursor": self._cursor,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint. Learning rates and betas come from the current config."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, (self.config.beta1, 0.999)
        self.fixed_noise = state["fixed_noise"].cpu()
        self.rng.set_state(state["rng_state"])
        self.step = int(state["step"])
        order = state["data_order"]
        if len(order) == len(self.images):
            self._order, self._cursor = order.long(), int(state["data_cursor"])
        else:  # other data than the checkpoint's: start a new epoch
            self._order = torch.randperm(len(self.images), generator=self.rng)
            self._cursor = 0


# ----------------------------------------------------------------------------- data


def _as_images(data: Any) -> torch.Tensor:
    """(N, C, H, W) float32 in [0, 1] from a tensor, an array or a sequence of (C, H, W) images."""
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if len(data) == 0:  # nothing to stack
            raise ConfigError("the data holds no images")
        shapes = sorted({tuple(np.shape(item)) for item in data})
        if len(shapes) > 1:
            listed = ", ".join("x".join(map(str, s)) for s in shapes[:4])
            raise ConfigError(
                f"the images have mixed shapes ({listed}{', ...' if len(shapes) > 4 else ''}); "
                "all must share one shape (C, H, W): resize or crop them first")
        data = torch.stack([torch.as_tensor(np.asarray(item)) for item in data])
    elif isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if not isinstance(data, torch.Tensor):
        raise ConfigError(f"data must be images (a tensor or array of shape (N, C, H, W)), "
                          f"not {type(data).__name__}")
    if data.dim() == 3:  # (N, H, W): grey images without a channel axis
        data = data.unsqueeze(1)
    if data.dim() != 4:
        raise ConfigError(f"data must have shape (N, C, H, W); got {tuple(data.shape)}")
    return check_pixels(data, "the data")


def _digits(config: GanConfig) -> torch.Tensor:
    x, _ = load_digits("train")
    if config.image_size != 28:
        x = F.interpolate(x, size=(config.image_size,) * 2, mode="bilinear",
                          align_corners=False).clamp(0.0, 1.0)
    if config.channels == 3:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x


class FolderSkipWarning(UserWarning):
    """Some files of an image folder could not be read and were skipped."""


def training_images(config: GanConfig, data: Any = None) -> tuple[torch.Tensor, int]:
    """The training images in [-1, 1] (CPU) and the batch size to use, validated."""
    batch_size = config.batch_size
    if config.dry_run:
        batch_size = min(batch_size, DRY_RUN_BATCH)
    if data is not None:
        x = _as_images(data)
        if tuple(x.shape[1:]) != config.image_shape:
            shape = "x".join(map(str, x.shape[1:]))
            raise ConfigError(
                f"the data holds {shape} images but the config asks for "
                f"{'x'.join(map(str, config.image_shape))} (channels x image_size x image_size); "
                "set channels and image_size to match, or resize the images")
    elif config.dry_run:  # like pytorch/examples' --dataset fake: random pixels, no loading
        g = torch.Generator().manual_seed(config.seed)
        x = torch.rand(2 * batch_size, *config.image_shape, generator=g)
    elif config.dataset == "digits":
        x = _digits(config)
    elif config.dataset.startswith("folder:"):
        from advstudio.core.data import load_image_folder

        folder = load_image_folder(config.dataset.split(":", 1)[1], config.image_size,
                                   config.channels)
        x = folder.x
        if folder.skipped:
            first = folder.skipped[0]
            warnings.warn(f"{len(folder.skipped)} unreadable file(s) skipped, e.g. "
                          f"{first[0].name}: {first[1]}", FolderSkipWarning, stacklevel=2)
    elif config.dataset.startswith("torchvision:"):
        from advstudio.core.data import load_torchvision_set

        x = load_torchvision_set(config.dataset.split(":", 1)[1], True, config.image_size,
                                 config.channels)[0]
    else:
        raise ConfigError(f"dataset {config.dataset!r} is not built in (built in: digits, "
                          "folder:<path>, torchvision:mnist|fashion-mnist|cifar10); "
                          "load its images and pass them as data")
    if batch_size > len(x):
        raise ConfigError(f"batch_size {batch_size} is larger than the data set "
                          f"({len(x)} images); allowed: 1 to {len(x)}")
    return to_signed(x), batch_size


# ----------------------------------------------------------------------------- the job


class GanTraining:
    """A :class:`GanTrainer` as the :class:`~advstudio.core.training.Trainer` that
    :func:`train_gan` fits, one step being ``d_steps`` discriminator updates and one generator
    update (both inside :meth:`compute`: the generator's step needs the moved discriminator).

    Rank 0 draws the live previews (at most ``preview_rate`` a second and
    :data:`PREVIEW_BUDGET` of the time) and, with ``evaluate``, judges the generator at step 0,
    every ``eval_every`` steps and at the end; ``history`` holds those evaluations. Neither
    goes into the checkpoint."""

    def __init__(self, trainer: GanTrainer, steps: int, evaluate: bool) -> None:
        self.trainer, self.steps, self.evaluate = trainer, steps, evaluate
        config = trainer.config
        self.main = is_main()
        self.throttle = Throttle(config.preview_rate) if config.preview_rate > 0 else None
        self.history: list[dict[str, float]] = []
        self.values: dict[str, float] = {}

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def position(self) -> int:
        return self.trainer.step

    def message(self) -> str:
        return f"step {self.trainer.step} of {self.steps}"

    def _evaluation(self) -> Metrics:
        t = self.trainer
        values = evaluate_digit_generator(t.generator, t.config.latent_dim,
                                          seed=t.config.seed + 1, device=str(t.device))
        self.history.append({"step": float(t.step), **values})
        return Metrics(t.step, values)

    def begin(self) -> Iterator[Event]:
        if self.evaluate and self.trainer.step == 0:
            yield self._evaluation()

    def compute(self) -> dict[str, float]:
        self.values = dict(zip(STEP_KEYS, self.trainer.train_step().tolist()))
        return self.values

    def apply(self) -> None:
        """Nothing: :meth:`compute` made both updates (and counted the step)."""

    def after_step(self) -> Iterator[Event]:
        step, config = self.trainer.step, self.trainer.config
        if self.main and self.throttle is not None and step < self.steps and self.throttle.ready():
            t0 = time.perf_counter()
            grid = self.trainer.sample_grid()
            # at most preview_rate per second, and at most PREVIEW_BUDGET of the run's time
            self.throttle.interval = max(1.0 / config.preview_rate,
                                         (time.perf_counter() - t0) / PREVIEW_BUDGET)
            yield Preview("samples", grid)
        if self.evaluate and (step % config.eval_every == 0 or step == self.steps):
            yield self._evaluation()

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)


def train_gan(config: GanConfig, data: Any = None) -> Generator[Event, None, GanResult]:
    """Train a GAN or DCGAN (a job: drive it with :func:`advstudio.core.jobs.drive`).

    ``data``: the images, (N, C, H, W) float in [0, 1] (or uint8), matching ``config``'s
    channels and image size; ``None`` loads ``config.dataset`` (the bundled digits).

    Yields, every step, ``Metrics(step, {loss_d, loss_g, d_x, d_g_z1, d_g_z2, grad_norm_d,
    grad_norm_g, diversity})`` and ``Progress``; at most ``preview_rate`` times a second
    ``Preview("samples", grid)`` of 64 samples from fixed noise (float32 in [0, 1]); every
    ``eval_every`` steps on digits, ``Metrics(step, {classes_covered, class_entropy, frechet,
    sample_diversity})``. Returns a :class:`GanResult`.

    Raises :class:`ConfigError` for bad data or settings, :class:`TrainingDivergedError` when a
    loss or gradient norm is NaN/infinite or a loss exceeds ``max_loss`` (the checkpoint on disk
    then is the last good one), :class:`CheckpointError` when resuming from a checkpoint of
    another architecture or geometry.

    Under ``torchrun`` the processes share every batch (:mod:`advstudio.core.distributed`);
    only rank 0 evaluates, draws the live previews and writes checkpoints.
    """
    device = pick_device(config.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FolderSkipWarning)
        images, batch_size = training_images(config, data)
    for w in caught:
        yield Log(str(w.message))
    check_batch(batch_size)
    steps = 1 if config.dry_run else config.steps
    evaluate = (is_main() and not config.dry_run and config.eval_every > 0
                and config.dataset == "digits")
    trainer = GanTrainer(config, images, device, batch_size)
    run = GanTraining(trainer, steps, evaluate)
    header = (f"{describe_geometry(trainer.geometry)}: {len(images)} {config.dataset} images, "
              f"batch {batch_size}, {steps} steps on {describe(device)}"
              + (" (dry run on fake data)" if config.dry_run and data is None else ""))
    checkpoint = CheckpointFile(
        config.checkpoint_path, save_checkpoint,
        lambda path: load_checkpoint(path, expect=trainer.geometry),
        write=is_main()) if config.checkpoint_path else None
    plan = Plan(length=steps, total=steps, message=run.message, header=header,
                checkpoint=checkpoint, checkpoint_every=config.checkpoint_every,
                checkpoint_first=True, resume=config.resume, dry_run=config.dry_run,
                divergence=Divergence(config.max_loss, losses=("loss_d", "loss_g"),
                                      grads=("grad_norm_d", "grad_norm_g"),
                                      before_update=False, advice=DIVERGENCE_ADVICE))
    logs: list[str] = []
    saved = yield from relay(fit(run, plan), keeping_logs(logs))
    grid = trainer.sample_grid()
    yield Preview("samples", grid)
    history = run.history
    return GanResult(
        config=config, step=trainer.step, metrics=run.values,
        evaluation={k: v for k, v in history[-1].items() if k != "step"} if history else {},
        history=history,
        generator_state={k: v.detach().cpu().clone()
                         for k, v in trainer.generator.state_dict().items()},
        samples=grid, checkpoint_path=saved, logs=logs)
