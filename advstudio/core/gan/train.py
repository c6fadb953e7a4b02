"""Training a GAN or DCGAN: the textbook step, and the job that runs it with events.

The step follows pytorch/examples ``dcgan/main.py`` (and Goodfellow et al.'s Algorithm 1), with
the loss of ``config.loss`` (:mod:`advstudio.core.playground.losses`, shared with the 2-D
playground):

1. Discriminator (``d_steps`` times): D's loss on a real batch (BCE target ``1 -
   label_smoothing``), then on a fake batch from the generator, detached, each with its own
   backward; plus WGAN-GP's gradient penalty or R1 if asked; one optimiser step.
2. Generator: a *fresh* fake batch through D, no real images, G's loss; one optimiser step of
   G only; then the moving average of G's weights (``ema_decay``) follows.

A conditional DCGAN gives the fakes of a D step the real batch's labels and draws the G step's
labels uniformly. Step metrics: ``d_x``, ``d_g_z1``, ``d_g_z2`` are mean sigmoid(D) (a
probability only for the BCE losses), ``out_real`` / ``out_fake`` D's raw mean outputs of the D
step (what LSGAN, hinge and a WGAN critic are read by, see :mod:`~advstudio.core.gan.diagnostics`)
and ``penalty`` the gradient penalty or R1 term before its weight (0 when off).

Images are scaled to [-1, 1] for training (the generator ends in tanh); samples, previews and
results are given back in [0, 1].
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advstudio.core.data.fit import fit_to_model
from advstudio.core.data.sets import load_dataset
from advstudio.core.data.spec import DatasetSpec, describe_shape
from advstudio.core.devices import describe, pick_device
from advstudio.core.distributed import (
    batch_mean,
    check_batch,
    data_parallel,
    gather_rows,
    is_main,
    shard,
    world,
)
from advstudio.core.errors import ConfigError
from advstudio.core.gan.checkpoint import describe_geometry, load_checkpoint, save_checkpoint
from advstudio.core.gan.config import GanConfig
from advstudio.core.gan.evaluation import EVAL_SAMPLES, evaluate_generator
from advstudio.core.gan.judge import NONE, Judge, make_judge
from advstudio.core.gan.metrics import pairwise_distance_mean
from advstudio.core.gan.networks import build_networks, network_options
from advstudio.core.gan.sampling import generate, sample_grid, to_signed
from advstudio.core.gan.stabilisers import ema_update
from advstudio.core.jobs import Event, Log, Metrics, Preview, Progress, Throttle, relay
from advstudio.core.playground.losses import (
    d_loss_fake,
    d_loss_real,
    g_loss,
    gradient_penalty,
    r1_penalty,
)
from advstudio.core.training import (
    CheckpointFile,
    Divergence,
    Plan,
    check_pixels,
    fit,
    keeping_logs,
)

PREVIEW_SAMPLES = 64
DRY_RUN_BATCH = 8
PREVIEW_BUDGET = 0.05  # share of the training time previews may take
STEP_KEYS = (
    "loss_d",
    "loss_g",
    "d_x",
    "d_g_z1",
    "d_g_z2",
    "out_real",
    "out_fake",
    "penalty",
    "grad_norm_d",
    "grad_norm_g",
    "diversity",
)
CLASS_ROW = 8  # samples per class in a conditional GAN's grid (one row per class)
DIVERGENCE_ADVICE = "Lower learning rates or label smoothing usually help."


@dataclass
class GanResult:
    """What :func:`train_gan` returns.

    ``metrics``: the last step's scalars; ``evaluation``: the last evaluation ({} when none ran);
    ``history``: every evaluation, each with its ``step``; ``generator_state``: the generator's
    ``state_dict`` on the CPU; ``samples``: the final grid of the fixed-noise samples, float32 in
    [0, 1] (H, W) or (H, W, 3); ``checkpoint_path``: the last checkpoint written ("" if none);
    ``judge``: the name of the classifier that judged the samples ("none": no evaluation, and
    ``judge_note`` says why); ``class_names``: the data set's classes ([] when unlabelled).
    ``config`` has a conditional GAN's ``num_classes`` filled in from the data set.
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
    judge: str = "none"
    judge_note: str = ""
    class_names: list[str] = field(default_factory=list)


def _grad_norm(net: nn.Module) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in net.parameters() if p.grad is not None])


class GanTrainer:
    """Networks, optimisers, noise and data order of one run, with the training step.

    ``images`` are float32 in [-1, 1], (N, C, H, W), on the CPU, ``labels`` their classes
    (N,) int64 for a conditional GAN (else None); batches move to ``device`` one at a time.
    Every random draw after initialisation (noise, labels, data order, the penalty's
    interpolation) comes from one ``torch.Generator`` seeded with ``config.seed`` whose state
    goes into checkpoints, so a resumed run repeats an uninterrupted one exactly; the global
    RNG is left alone.

    Under ``torchrun`` (see :mod:`advstudio.core.distributed`) every process draws the whole
    batch's data order and noise and trains on its rows, through ``g_parallel`` and
    ``d_parallel`` (the networks in ``DistributedDataParallel``, BatchNorm synchronised);
    ``generator`` and ``discriminator`` themselves serve sampling and the state dicts.
    ``sampler`` is the network that draws samples: the moving average of G with
    ``ema_decay``, else G itself.
    """

    def __init__(
        self,
        config: GanConfig,
        images: torch.Tensor,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.images = images
        self.num_classes = config.num_classes if config.conditional else 0
        if self.num_classes and (labels is None or len(labels) != len(images)):
            raise ConfigError("a conditional GAN needs one class label per training image")
        self.labels = labels.long() if self.num_classes else None
        self.batch_size = batch_size or config.batch_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            g, d = build_networks(
                config.arch,
                config.latent_dim,
                config.channels,
                config.image_size,
                **network_options(config),
            )
        self.generator = g.to(self.device).train()
        self.discriminator = d.to(self.device).train()
        self.generator_ema = (
            copy.deepcopy(self.generator).requires_grad_(False) if config.ema_decay else None
        )
        # the networks themselves in a single process
        self.g_parallel = data_parallel(self.generator, self.device)
        self.d_parallel = data_parallel(self.discriminator, self.device)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.fixed_noise = self._draw(self.num_classes * CLASS_ROW or PREVIEW_SAMPLES)
        self.fixed_labels = (
            torch.arange(self.num_classes).repeat_interleave(CLASS_ROW)
            if self.num_classes
            else None
        )
        self.step = 0
        self._order = torch.randperm(len(images), generator=self.rng)
        self._cursor = 0

    @property
    def geometry(self) -> dict[str, Any]:
        c = self.config
        return {
            "arch": c.arch,
            "image_size": c.image_size,
            "channels": c.channels,
            "latent_dim": c.latent_dim,
            **network_options(c),
        }

    @property
    def sampler(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def _draw(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), (n, latent_dim), drawn on the CPU (same numbers on every device)."""
        return torch.randn(n, self.config.latent_dim, generator=self.rng)

    def noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` noise vectors and, for a conditional GAN, uniform class labels on the device;
        in a data-parallel run this process's rows of them (every process draws all ``n``, so
        the generators stay in step)."""
        part = shard(n)
        z = part.take(self._draw(n)).to(self.device)
        if not self.num_classes:
            return z, None
        y = torch.randint(self.num_classes, (n,), generator=self.rng)
        return z, part.take(y).to(self.device)

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next ``batch_size`` real images and their labels (None if unconditional),
        this process's rows of them in a data-parallel run: epochs over a shuffled order, last
        partial batch of each epoch dropped (BatchNorm and the losses assume full batches)."""
        b = self.batch_size
        if self._cursor + b > len(self._order):
            self._order = torch.randperm(len(self.images), generator=self.rng)
            self._cursor = 0
        idx = shard(b).take(self._order[self._cursor : self._cursor + b])
        self._cursor += b
        x = self.images[idx].to(self.device, non_blocking=True)
        return x, None if self.labels is None else self.labels[idx].to(self.device)

    def _penalty(
        self,
        real: torch.Tensor,
        out_real: torch.Tensor,
        fake: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """WGAN-GP's gradient penalty or R1, through D itself (double backward does not go
        through DistributedDataParallel), or None when neither is on."""
        c = self.config
        if c.loss == "wgan-gp" and c.gp_weight:
            eps = torch.rand(len(real), 1, 1, 1, generator=self.rng).to(self.device)
            critic = functools.partial(self.discriminator, labels=labels)
            return gradient_penalty(critic, real.detach(), fake, eps)
        if c.r1_gamma:
            return r1_penalty(out_real, real)
        return None

    def d_step(self, batch: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[torch.Tensor, ...]:
        """One discriminator update on ``batch`` (:meth:`real_batch`) and ``batch_size``
        fakes; returns (loss_d, d_x, d_g_z1, out_real, out_fake, penalty, grad_norm_d) as 0-d
        tensors, this process's means."""
        c, d = self.config, self.d_parallel
        real, labels = batch
        part = shard(self.batch_size)
        self.discriminator.zero_grad(set_to_none=True)
        if c.r1_gamma:
            real = real.detach().requires_grad_(True)
        out_real = d(real, labels)
        loss_real = d_loss_real(c.loss, out_real, c.label_smoothing)
        part.scale(loss_real).backward(retain_graph=bool(c.r1_gamma))
        with torch.no_grad():  # G is not trained here: no graph through it
            z, _ = self.noise(self.batch_size)
            fake = self.generator(z, labels)  # a conditional D step: the real batch's labels
        out_fake = d(fake, labels)
        loss_fake = d_loss_fake(c.loss, out_fake)
        part.scale(loss_fake).backward()
        loss = (loss_real + loss_fake).detach()
        penalty = self._penalty(real, out_real, fake, labels)
        if penalty is None:
            penalty = torch.zeros((), device=self.device)
        else:
            weight = c.gp_weight if c.loss == "wgan-gp" else c.r1_gamma / 2
            (weight * penalty).backward()
            loss = loss + weight * penalty.detach()
        grad_norm = _grad_norm(self.discriminator)  # DDP averaged the gradients already
        self.opt_d.step()
        out_real, out_fake = out_real.detach(), out_fake.detach()
        return (
            loss,
            torch.sigmoid(out_real).mean(),
            torch.sigmoid(out_fake).mean(),
            out_real.mean(),
            out_fake.mean(),
            penalty.detach(),
            grad_norm,
        )

    def g_step(self) -> tuple[torch.Tensor, ...]:
        """One generator update on fresh noise (and labels), with no real images; returns
        (loss_g, d_g_z2, grad_norm_g, fake) with ``fake`` the batch in [-1, 1], detached (this
        process's means and rows in a data-parallel run). The moving average follows."""
        g = self.generator
        g.zero_grad(set_to_none=True)
        z, labels = self.noise(self.batch_size)
        fake = self.g_parallel(z, labels)
        # D itself, not its DDP wrapper: its gradients from this pass are never used
        out = self.discriminator(fake, labels)
        loss_g = g_loss(self.config.loss, out)
        shard(self.batch_size).scale(loss_g).backward()
        grad_norm = _grad_norm(g)
        self.opt_g.step()  # only G moves; D's gradients from this pass are cleared next d_step
        if self.generator_ema is not None:
            ema_update(self.generator_ema, g, self.config.ema_decay)
        return loss_g.detach(), torch.sigmoid(out.detach()).mean(), grad_norm, fake.detach()

    def train_step(self) -> torch.Tensor:
        """``d_steps`` discriminator updates, then one generator update. Returns the step's
        scalars as one tensor in :data:`STEP_KEYS` order (one transfer to read them all); in a
        data-parallel run the whole batch's, on every process."""
        for _ in range(self.config.d_steps):
            loss_d, d_x, d_g_z1, out_real, out_fake, penalty, gn_d = self.d_step(self.real_batch())
        loss_g, d_g_z2, gn_g, fake = self.g_step()
        part = shard(self.batch_size)
        means = batch_mean(
            torch.stack([loss_d, loss_g, d_x, d_g_z1, d_g_z2, out_real, out_fake, penalty]), part
        )
        fake = gather_rows(fake, part)
        diversity = pairwise_distance_mean(fake) * 0.5  # distances in [0, 1] pixel units
        self.step += 1
        return torch.stack([*means, gn_d, gn_g, diversity])

    def samples(self) -> torch.Tensor:
        """The fixed-noise samples in [0, 1] on the CPU (a conditional GAN's: one row of
        :data:`CLASS_ROW` per class)."""
        return generate(self.sampler, self.fixed_noise, labels=self.fixed_labels)

    def sample_grid(self) -> np.ndarray:
        return sample_grid(self.samples(), nrow=CLASS_ROW if self.num_classes else 8)

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs: tensors and plain values only (``weights_only`` safe)."""
        extra = (
            {"generator_ema": self.generator_ema.state_dict()}
            if self.generator_ema is not None
            else {}
        )
        return {
            **self.geometry,
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            **extra,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "fixed_noise": self.fixed_noise,
            "rng_state": self.rng.get_state(),
            "data_order": self._order,
            "data_cursor": self._cursor,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint. Learning rates and betas come from the current config;
        a checkpoint without a moving average (EMA switched on later, or an old checkpoint)
        starts the average at the generator's weights."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state.get("generator_ema", state["generator"]))
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
                "all must share one shape (C, H, W): resize or crop them first"
            )
        data = torch.stack([torch.as_tensor(np.asarray(item)) for item in data])
    elif isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if not isinstance(data, torch.Tensor):
        raise ConfigError(
            f"data must be images (a tensor or array of shape (N, C, H, W)), "
            f"not {type(data).__name__}"
        )
    if data.dim() == 3:  # (N, H, W): grey images without a channel axis
        data = data.unsqueeze(1)
    if data.dim() != 4:
        raise ConfigError(f"data must have shape (N, C, H, W); got {tuple(data.shape)}")
    return check_pixels(data, "the data")


@dataclass
class GanData:
    """The training images of a run: ``x`` float32 (N, C, H, W) in [0, 1] at the config's
    geometry, ``y`` their classes (None when the data has none), ``class_names`` ([] then),
    ``lines`` what the log should say (the set, what was fitted, what was skipped)."""

    x: torch.Tensor
    y: torch.Tensor | None
    class_names: list[str]
    lines: list[str]


def _not_built_in(config: GanConfig) -> ConfigError:
    return ConfigError(
        f"dataset {config.dataset!r} is not built in (built in: digits, folder:<path>, "
        f"torchvision:<name>, imagenet-folder:<path>); load its images and pass them as data"
    )


def _labelled_folder(root: Path) -> bool:
    """A folder the data module reads with classes (ImageFolder, labels.csv, train/test)."""
    if not root.is_dir():
        return True  # let the data module say it is missing
    if (root / "labels.csv").is_file() or (root / "train").is_dir():
        return True
    return sum(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()) >= 2


def _fitted(config: GanConfig, x: torch.Tensor, what: str) -> tuple[torch.Tensor, list[str]]:
    x, note = fit_to_model(x, config.image_shape, config.fit)
    return x, [f"{what} fitted to {describe_shape(config.image_shape)}: {note}"] if note else []


def load_training_data(config: GanConfig, split: str = "train") -> GanData:
    """``split`` of ``config.dataset`` (the one data module), fitted to the config's geometry
    under ``config.fit``; a flat folder of unlabelled images is read whole (no classes)."""
    try:
        spec = DatasetSpec.parse(config.dataset)
    except ConfigError:
        raise _not_built_in(config) from None
    if spec.kind == "folder" and not _labelled_folder(Path(spec.arg).expanduser()):
        from advstudio.core.data import load_image_folder

        if config.fit == "none":
            raise ConfigError(
                f"{spec.arg} is a folder of unlabelled images: they are centre-cropped and "
                "resized to the image size; choose fit 'center-crop' or 'resize'"
            )
        folder = load_image_folder(spec.arg, config.image_size, config.channels)
        lines = [
            f"data: {len(folder.x):,} unlabelled images of {spec.arg}, centre-cropped and "
            f"resized to {describe_shape(config.image_shape)}"
        ]
        if folder.skipped:
            first = folder.skipped[0]
            lines.append(
                f"{len(folder.skipped)} unreadable file(s) skipped, e.g. "
                f"{first[0].name}: {first[1]}"
            )
        return GanData(folder.x, None, [], lines)
    data = load_dataset(spec, split, limit=config.max_images, seed=config.seed)
    lines = [f"data: {data.source} ({split}), {data.description}"]
    if data.skipped:
        lines.append(data.skipped_line())
    x, notes = _fitted(config, data.x, "images")
    return GanData(x, data.y, data.class_names, lines + notes)


def training_data(config: GanConfig, data: Any = None, labels: Any = None) -> GanData:
    """The images of a run: ``data`` when given (checked against the config's geometry, with
    ``labels`` if any), random pixels in a dry run, else :func:`load_training_data`."""
    if data is not None:
        x = _as_images(data)
        if tuple(x.shape[1:]) != config.image_shape:
            shape = "x".join(map(str, x.shape[1:]))
            raise ConfigError(
                f"the data holds {shape} images but the config asks for "
                f"{'x'.join(map(str, config.image_shape))} (channels x image_size x image_size); "
                "set channels and image_size to match, or resize the images"
            )
        y = None if labels is None else torch.as_tensor(np.asarray(labels)).long().flatten()
        k = config.num_classes or 10
        return GanData(x, y, [str(i) for i in range(k)] if y is not None else [], [])
    if config.dry_run:  # like pytorch/examples' --dataset fake: random pixels, no loading
        n = 2 * min(config.batch_size, DRY_RUN_BATCH)
        g = torch.Generator().manual_seed(config.seed)
        x = torch.rand(n, *config.image_shape, generator=g)
        k = config.num_classes or 10
        y = torch.randint(k, (n,), generator=torch.Generator().manual_seed(0))
        return GanData(x, y, [str(i) for i in range(k)], [])
    return load_training_data(config)


def training_images(config: GanConfig, data: Any = None) -> tuple[torch.Tensor, int]:
    """The training images in [-1, 1] (CPU) and the batch size to use, validated."""
    x = training_data(config, data).x
    return to_signed(x), _batch_size(config, len(x))


def _batch_size(config: GanConfig, n: int) -> int:
    batch_size = min(config.batch_size, DRY_RUN_BATCH) if config.dry_run else config.batch_size
    if batch_size > n:
        raise ConfigError(
            f"batch_size {batch_size} is larger than the data set ({n} images); allowed: 1 to {n}"
        )
    return batch_size


def resolve_classes(config: GanConfig, data: GanData) -> GanConfig:
    """The config with a conditional GAN's ``num_classes`` taken from the data set (0 in the
    config), checked against it and against the labels."""
    if not config.conditional:
        return config
    if data.y is None:
        raise ConfigError(
            f"a conditional GAN needs class labels: {config.dataset!r} has none "
            "here; pass labels to train_gan, or use a data set with classes "
            "(one sub-folder per class)"
        )
    k = config.num_classes or len(data.class_names) or 10
    if config.num_classes and data.class_names and k != len(data.class_names):
        raise ConfigError(
            f"num_classes is {k} but {config.dataset} has {len(data.class_names)} classes; "
            "set 0 to take the data set's"
        )
    y, n = data.y, len(data.x)
    if len(y) != n or (len(y) and (int(y.min()) < 0 or int(y.max()) >= k)):
        raise ConfigError(f"labels must be {n} classes in 0..{k - 1} (num_classes), one per image")
    return replace(config, num_classes=k)


# ----------------------------------------------------------------------------- the job


class GanTraining:
    """A :class:`GanTrainer` as the :class:`~advstudio.core.training.Trainer` that
    :func:`train_gan` fits, one step being ``d_steps`` discriminator updates and one generator
    update (both inside :meth:`compute`: the generator's step needs the moved discriminator).

    Rank 0 draws the live previews (at most ``preview_rate`` a second and
    :data:`PREVIEW_BUDGET` of the time) and, with ``evaluate``, judges the generator at step 0,
    every ``eval_every`` steps and at the end; ``history`` holds those evaluations. Neither
    goes into the checkpoint."""

    def __init__(self, trainer: GanTrainer, steps: int, judge: Judge | None) -> None:
        self.trainer, self.steps, self.judge = trainer, steps, judge
        self.evaluate = judge is not None
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
        values = evaluate_generator(
            t.sampler,
            t.config.latent_dim,
            self.judge,
            seed=t.config.seed + 1,
            num_classes=t.num_classes,
        )
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
            self.throttle.interval = max(
                1.0 / config.preview_rate, (time.perf_counter() - t0) / PREVIEW_BUDGET
            )
            yield Preview("samples", grid)
        if self.evaluate and (step % config.eval_every == 0 or step == self.steps):
            if step == self.steps:  # the last evaluation is its own phase, not "300/300"
                yield Progress(
                    0, 1, f"judging {EVAL_SAMPLES:,} samples", "evaluating the generator"
                )
            yield self._evaluation()

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)


def _judge(
    config: GanConfig, data: GanData, device: torch.device, classifier: Any
) -> tuple[Judge | None, Judge]:
    """(the judge to evaluate with or None, the judge as the result names it)."""
    if config.dry_run or config.eval_every == 0 or not is_main():
        why = "a dry run" if config.dry_run else "eval_every is 0" if is_main() else ""
        return None, Judge("", "none", why=f"no evaluation ({why})" if why else "")
    choice = config.judge
    real = None
    if choice != NONE and not (config.dataset == "digits" and choice in ("auto", "digits-cnn")):
        real = _real_images(config, data)
    try:
        judge = make_judge(
            choice,
            config.dataset,
            data.class_names,
            str(device),
            real,
            classifier=classifier,
            card=config.judge_card,
        )
    except ConfigError as exc:
        if classifier is not None or config.judge not in ("auto", NONE):
            raise
        return None, Judge("", "none", why=str(exc))
    return (judge if judge.active else None), judge


def _real_images(config: GanConfig, data: GanData) -> torch.Tensor | None:
    """Real images at the run's geometry for the Fréchet distance: up to 1,000 of the data
    set's test split, or of the training images when it has none (or was passed in)."""
    if not config.dataset.startswith(("folder:", "torchvision:", "imagenet-folder:")) or (
        not data.class_names or config.max_images
    ):
        return data.x[:EVAL_SAMPLES]
    try:
        test = load_dataset(config.dataset, "test", limit=EVAL_SAMPLES, seed=0)
    except ConfigError:  # e.g. a folder too small to hold a test split
        return data.x[:EVAL_SAMPLES]
    if len(test.x) < 2:
        return data.x[:EVAL_SAMPLES]
    return fit_to_model(test.x, config.image_shape, config.fit)[0]


def train_gan(
    config: GanConfig, data: Any = None, labels: Any = None, judge: Any = None
) -> Generator[Event, None, GanResult]:
    """Train a GAN or DCGAN (a job: drive it with :func:`advstudio.core.jobs.drive`).

    ``data``: the images, (N, C, H, W) float in [0, 1] (or uint8), matching ``config``'s
    channels and image size; ``None`` loads ``config.dataset`` (the one data module) and fits
    it to that geometry under ``config.fit``.
    ``labels``: their classes (N,), for a conditional GAN on ``data``.
    ``judge``: an already loaded [0, 1] classifier to judge with (the window's open model; its
    registry key is ``config.judge``), else the judge is made from ``config.judge``.

    Yields, every step, ``Metrics(step, {loss_d, loss_g, d_x, d_g_z1, d_g_z2, grad_norm_d,
    grad_norm_g, diversity})`` and ``Progress``; at most ``preview_rate`` times a second
    ``Preview("samples", grid)`` of 64 samples from fixed noise (float32 in [0, 1]); every
    ``eval_every`` steps when there is a judge (:mod:`advstudio.core.gan.judge`),
    ``Metrics(step, {classes_covered, class_entropy, frechet, sample_diversity})`` (a
    conditional GAN's adds ``class_accuracy`` and ``class_acc_<k>``, see
    :func:`~advstudio.core.gan.evaluation.evaluate_generator`). Returns a :class:`GanResult`,
    whose generator is the moving average when ``ema_decay`` is on.

    Raises :class:`ConfigError` for bad data or settings, :class:`TrainingDivergedError` when a
    loss or gradient norm is NaN/infinite or a loss exceeds ``max_loss`` (the checkpoint on disk
    then is the last good one), :class:`CheckpointError` when resuming from a checkpoint of
    another architecture or geometry.

    Under ``torchrun`` the processes share every batch (:mod:`advstudio.core.distributed`);
    only rank 0 evaluates, draws the live previews and writes checkpoints.
    """
    device = pick_device(config.device)
    if data is None and not config.dry_run and config.dataset.startswith("torchvision:"):
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # once, with progress and Cancel
    gan_data = training_data(config, data, labels)
    for line in gan_data.lines:
        yield Log(line)
    config = resolve_classes(config, gan_data)
    images, batch_size = to_signed(gan_data.x), _batch_size(config, len(gan_data.x))
    y = gan_data.y if config.conditional else None
    check_batch(batch_size)
    if world().size > 1 and (config.loss == "wgan-gp" or config.r1_gamma):
        raise ConfigError(
            "WGAN-GP and R1 penalties run in a single process only (their double "
            "backward bypasses DistributedDataParallel); use another loss under "
            "torchrun"
        )
    steps = 1 if config.dry_run else config.steps
    evaluator, named = _judge(config, gan_data, device, judge)
    if evaluator is not None:
        yield Log(
            f"judge: {named.name} ({named.num_classes} classes)"
            + (f"; {named.why}" if named.features_only else "")
        )
    elif named.why and config.eval_every and not config.dry_run:
        yield Log(f"no judge: {named.why}; classes covered and Fréchet distance are off")
    trainer = GanTrainer(config, images, device, batch_size, labels=y)
    run = GanTraining(trainer, steps, evaluator)
    header = (
        f"{describe_geometry(trainer.geometry)}: {len(images)} {config.dataset} images, "
        f"batch {batch_size}, {steps} steps on {describe(device)}"
        + (" (dry run on fake data)" if config.dry_run and data is None else "")
    )
    checkpoint = (
        CheckpointFile(
            config.checkpoint_path,
            save_checkpoint,
            lambda path: load_checkpoint(path, expect=trainer.geometry),
            write=is_main(),
        )
        if config.checkpoint_path
        else None
    )
    plan = Plan(
        length=steps,
        total=steps,
        message=run.message,
        header=header,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        checkpoint_first=True,
        resume=config.resume,
        dry_run=config.dry_run,
        divergence=Divergence(
            config.max_loss,
            losses=("loss_d", "loss_g"),
            grads=("grad_norm_d", "grad_norm_g"),
            before_update=False,
            advice=DIVERGENCE_ADVICE,
        ),
    )
    logs: list[str] = []
    saved = yield from relay(fit(run, plan), keeping_logs(logs))
    grid = trainer.sample_grid()
    yield Preview("samples", grid)
    history = run.history
    return GanResult(
        config=config,
        step=trainer.step,
        metrics=run.values,
        evaluation={k: v for k, v in history[-1].items() if k != "step"} if history else {},
        history=history,
        generator_state={
            k: v.detach().cpu().clone() for k, v in trainer.sampler.state_dict().items()
        },
        samples=grid,
        checkpoint_path=saved,
        logs=logs,
        judge=named.name if evaluator is not None else "none",
        judge_note=named.why,
        class_names=gan_data.class_names,
    )
