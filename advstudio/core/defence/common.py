"""What the defence jobs share: labelled data (the digits or any set of the shared data-set
choice), held-out subsets, the optimiser and its schedule, atomic files, checkpoints and a
private random stream for dropout.

Pixels are float32 in [0, 1], (N, C, H, W), labels int64 indexing the set's classes.
:func:`training_sets` gives a set at its native shape for any architecture that fits it; for the
digit networks (1×28×28, 10 outputs) it refuses a colour set and resizes a grey one to 28×28
(and says so).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advstudio.core.atomic import atomic_torch_save
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.defence.defaults import check_arch_data, dataset_geometry
from advstudio.core.errors import CheckpointError, ConfigError
from advstudio.core.models.names import DIGIT_ARCHITECTURES
from advstudio.core.training import check_pixels, read_checkpoint

Data = tuple[torch.Tensor, torch.Tensor]
IMAGE_SHAPE = (1, 28, 28)
CHECKPOINT_FORMAT = "advstudio-defence-checkpoint"
CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------------- data


def check_data(
    data: Any,
    what: str = "data",
    shape: tuple[int, int, int] | None = IMAGE_SHAPE,
    num_classes: int | None = len(DIGIT_CLASSES),
) -> Data:
    """``(x, y)`` validated: x (N, *shape) (grey: also (N, H, W)) float in [0, 1] (or uint8),
    y (N,) integer classes in [0, num_classes). Returned on the CPU as float32 / int64.
    ``shape`` / ``num_classes`` None: any (N, C, H, W) / any class >= 0."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ConfigError(f"{what} must be a pair (x, y) of tensors, not {type(data).__name__}")
    x, y = (torch.as_tensor(v) for v in data)
    x, y = x.detach().cpu(), y.detach().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        want = "(N, C, H, W)" if shape is None else f"(N, {', '.join(map(str, shape))})"
        raise ConfigError(f"{what}: images must have shape {want}, not {tuple(x.shape)}")
    x = check_pixels(x, what)
    if y.dim() != 1 or len(y) != len(x):
        raise ConfigError(
            f"{what}: need one label per image; got labels of shape "
            f"{tuple(y.shape)} for {len(x)} images"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ConfigError(f"{what}: labels must be integer classes, not {y.dtype}")
    y = y.long()
    bad = y[(y < 0) | (y >= (num_classes if num_classes is not None else math.inf))]
    if bad.numel():
        raise ConfigError(
            f"{what}: label {int(bad[0])} is out of range; "
            + (
                f"digit classes are 0 to {num_classes - 1}"
                if shape == IMAGE_SHAPE
                else f"classes are 0 to {num_classes - 1}"
                if num_classes is not None
                else "classes are whole numbers from 0"
            )
        )
    return x, y


def fake_digits(
    n: int, seed: int, shape: tuple[int, int, int] = IMAGE_SHAPE, classes: int = 10
) -> Data:
    """``n`` random-pixel images of ``shape`` with random labels in [0, ``classes``): the
    dry-run data (nothing loaded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def subset(data: Data, n: int, seed: int) -> Data:
    """A seeded random subset of ``n`` items (all, shuffled, when ``n`` >= len or ``n`` == 0).

    The bundled splits are sorted by class, so "the first n" would be a few classes only."""
    x, y = data
    count = len(x) if n <= 0 else min(n, len(x))
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]
    return x[idx], y[idx]


def heldout_digits(n: int, seed: int = 0) -> Data:
    """``n`` of the 1,000 bundled test digits, a seeded random subset (0 = all)."""
    return subset(load_digits("test"), n, seed)


def _for_digit_networks(data: Any, dataset: str) -> tuple[Data, str]:
    """A loaded :class:`~advstudio.core.data.sets.Dataset` as digit-network data: grey, at most
    10 classes, resized to 28×28 when needed (the note says so)."""
    from advstudio.core.data.fit import fit_to_model

    if data.shape[0] != 1:
        raise ConfigError(
            f"{dataset} holds {data.description.split(',')[0]} images, but the digit "
            "architectures take 1×28×28 grey; choose a colour architecture (small-cnn, "
            "preact-resnet18, cifar-resnet18, wrn-28-10, resnet18) or a grey set"
        )
    if len(data.class_names) > len(DIGIT_CLASSES):
        raise ConfigError(
            f"{dataset} has {len(data.class_names)} classes; the digit "
            f"architectures have {len(DIGIT_CLASSES)} outputs, so at most "
            f"{len(DIGIT_CLASSES)} classes"
        )
    x, note = fit_to_model(data.x, IMAGE_SHAPE, "resize")
    return (x, data.y), note


@dataclass
class TrainingSets:
    """A data set as a training job takes it: ``train`` and ``held`` (held-out) pairs,
    the network's ``shape`` (C, H, W) and ``class_names``, and the ``lines`` to log (the set,
    what was skipped, what was fitted)."""

    train: Data
    held: Data
    shape: tuple[int, int, int]
    class_names: list[str]
    lines: list[str] = field(default_factory=list)


def _empty(shape: tuple[int, int, int]) -> Data:
    return torch.empty(0, *shape), torch.empty(0, dtype=torch.long)


def training_sets(
    dataset: str,
    arch: str,
    eval_images: int | None,
    seed: int,
    train_images: int = 0,
) -> TrainingSets:
    """``dataset`` for training ``arch``: the train split (``train_images`` of it drawn with
    ``seed``, 0 = all) and ``eval_images`` of the test split (0 = none, None = all). The digit
    networks get it through :func:`_for_digit_networks` (grey, resized to 28×28); any other
    architecture at its native shape, with the set's class count, after
    :func:`~advstudio.core.defence.defaults.check_arch_data` on the loaded geometry. The lines
    name the set, what was skipped (issue #18: unreadable files are never dropped silently)
    and the fit."""
    from advstudio.core.data.sets import load_dataset

    digit_net = arch in DIGIT_ARCHITECTURES
    if dataset == "digits":
        train = load_digits("train")
        train = subset(train, train_images, seed) if train_images else train
        held = heldout_digits(eval_images or 0, seed) if eval_images != 0 else _empty(IMAGE_SHAPE)
        return TrainingSets(train, held, IMAGE_SHAPE, list(DIGIT_CLASSES))
    parts = [load_dataset(dataset, "train", limit=train_images, seed=seed)]
    if eval_images is None or eval_images:
        parts.append(load_dataset(dataset, "test", limit=eval_images or 0, seed=seed))
    names = list(parts[0].class_names)
    if not digit_net:
        check_arch_data(arch, dataset, parts[0].shape, len(names))
    lines, fitted = [], []
    for part in parts:
        lines.append(
            f"data: {dataset} ({'train' if part is parts[0] else 'test'}), {part.description}"
        )
        if part.skipped:
            lines.append(part.skipped_line())
        if digit_net:
            pair, note = _for_digit_networks(part, dataset)
            if note:
                lines.append(f"fitted to the digit networks: {note}")
        else:
            pair = (part.x, part.y)
            if part is not parts[0] and part.shape != parts[0].shape:
                from advstudio.core.data.fit import fit_to_model

                x, note = fit_to_model(part.x, parts[0].shape, "resize")
                pair = (x, part.y)
                lines.append(f"test split fitted to the train split's shape: {note}")
        fitted.append(pair)
    shape = IMAGE_SHAPE if digit_net else tuple(parts[0].shape)
    if digit_net and len(names) != len(DIGIT_CLASSES):
        names = list(DIGIT_CLASSES)  # ten outputs; a smaller set uses the first ones
    if len(fitted) == 1:
        fitted.append(_empty(shape))
    return TrainingSets(fitted[0], fitted[1], shape, names, lines)


def model_sets(
    dataset: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    eval_images: int | None,
    seed: int,
    train_images: int = 0,
) -> TrainingSets:
    """``dataset`` for a job on a given model (the detector's target) taking ``input_shape``
    with ``num_classes`` outputs: the splits as in :func:`training_sets`, resized to the
    model's height and width when they differ (and said so). A set with other channels than
    the model's, or more classes, is a :class:`ConfigError` (colour is never made grey)."""
    from advstudio.core.data.fit import fit_to_model
    from advstudio.core.data.sets import load_dataset

    shape = tuple(int(s) for s in input_shape)
    parts = [load_dataset(dataset, "train", limit=train_images, seed=seed)]
    if eval_images is None or eval_images:
        parts.append(load_dataset(dataset, "test", limit=eval_images or 0, seed=seed))
    first = parts[0]
    if first.shape[0] != shape[0] or len(first.class_names) > num_classes:
        raise ConfigError(
            f"{dataset} holds {first.description.split(',')[0]} images of "
            f"{len(first.class_names)} classes, but the model takes "
            f"{shape[1]}×{shape[2]} images of {shape[0]} channel(s) and has {num_classes} "
            "classes; choose a data set of the model's kind"
        )
    lines, fitted = [], []
    for part in parts:
        lines.append(
            f"data: {dataset} ({'train' if part is first else 'test'}), {part.description}"
        )
        if part.skipped:
            lines.append(part.skipped_line())
        x, note = fit_to_model(part.x, shape, "resize")
        if note:
            lines.append(f"fitted to the model: {note}")
        fitted.append((x, part.y))
    if len(fitted) == 1:
        fitted.append(_empty(shape))
    return TrainingSets(fitted[0], fitted[1], shape, list(first.class_names), lines)


def defence_sets(
    dataset: str, eval_images: int | None, seed: int, train_images: int = 0
) -> tuple[Data, Data, list[str]]:
    """``(train, held-out, log lines)`` of ``dataset`` for the digit networks
    (:func:`training_sets` with ``"digits-cnn"``)."""
    sets = training_sets(dataset, "digits-cnn", eval_images, seed, train_images)
    return sets.train, sets.held, sets.lines


def dry_run_geometry(arch: str, dataset: str) -> tuple[tuple[int, int, int], list[str]]:
    """The (C, H, W) and class names a dry run fakes for ``arch`` on ``dataset``: the digits'
    for the digit networks, else the set's known geometry (a folder: 3×32×32, 10 classes)."""
    if arch in DIGIT_ARCHITECTURES:
        return IMAGE_SHAPE, list(DIGIT_CLASSES)
    shape, classes = dataset_geometry(dataset) or ((3, 32, 32), 10)
    return shape, [str(i) for i in range(classes)]


# ----------------------------------------------------------------------------- optimiser


def make_optimizer(params: Any, config: Any) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``params`` at ``config.lr``: Adam (exactly as before when
    ``weight_decay`` is 0) or SGD with ``momentum``; L2 ``weight_decay`` either way."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.weight_decay:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr)


def scheduled_lr(lr: float, schedule: str, step: int, total: int) -> float:
    """The learning rate of update ``step`` (0-based) of ``total``: ``lr`` throughout
    (``"constant"``), ÷10 from 50 % and ÷100 from 75 % of the steps (``"piecewise"``, Rice et
    al. 2020's CIFAR schedule), or ``lr * (1 + cos(pi * step / total)) / 2`` (``"cosine"``)."""
    if schedule == "constant" or total <= 0:
        return lr
    t = min(step, total) / total
    if schedule == "piecewise":
        return lr * (0.01 if t >= 0.75 else 0.1 if t >= 0.5 else 1.0)
    return lr * 0.5 * (1.0 + math.cos(math.pi * t))


def apply_schedule(optimizer: torch.optim.Optimizer, config: Any, step: int, total: int) -> None:
    """Set every group's learning rate for update ``step`` (a constant schedule leaves the
    optimiser untouched, so such a run is bit for bit what it was before schedules)."""
    if config.schedule == "constant":
        return
    lr = scheduled_lr(config.lr, config.schedule, step, total)
    for group in optimizer.param_groups:
        group["lr"] = lr


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module.state_dict()``."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- files

atomic_save = atomic_torch_save  # the defence jobs' name for it


def save_model(state: dict[str, torch.Tensor], path: str, arch: str, classifier: Any) -> str:
    """Write a trained network's ``state`` to ``path`` (atomically) and its model card beside
    it (``path`` with ``.toml``: input shape, class names, mean/std, architecture), so the file
    opens as ``file:<path>`` at its own shape. A digit network on the digits gets no card: the
    registry gives such a file the built-ins' card. Returns the log line."""
    from advstudio.core.models.card import ModelCard, write_card

    atomic_save(state, path)
    names = list(classifier.class_names)
    mean = tuple(float(f"{m:.6g}") for m in classifier.mean.flatten().tolist())
    std = tuple(float(f"{s:.6g}") for s in classifier.std.flatten().tolist())
    identity = all(m == 0.0 for m in mean) and all(s == 1.0 for s in std)
    card = ModelCard(
        tuple(int(s) for s in classifier.input_shape),
        "digits" if names == list(DIGIT_CLASSES) else tuple(names),
        None if identity else mean,
        None if identity else std,
        architecture=arch,
    )
    if card.classes == "digits" and card.input_shape == IMAGE_SHAPE and arch in DIGIT_ARCHITECTURES:
        # the built-ins' own card, which such a file gets without one (as before cards)
        return f"Saved the trained weights to {path} (load as model file:{path})."
    write_card(card, path)
    return f"Saved the trained weights to {path} and its card (load as model file:{path})."


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> None:
    """Write a checkpoint (tensors and plain values only, so ``weights_only=True`` reads it)."""
    atomic_save(
        {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, **payload}, path
    )


def load_checkpoint(
    path: str | os.PathLike, kind: str, expect: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` for a job of ``kind``; ``expect``
    maps header fields (e.g. ``arch``) to required values. Raises :class:`CheckpointError`."""
    path = Path(path)
    ckpt = read_checkpoint(
        path, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, family="defence checkpoint"
    )
    if ckpt.get("kind") != kind:
        raise CheckpointError(
            f"{path.name} is a checkpoint of a {ckpt.get('kind')!r} job, not of a {kind!r} job"
        )
    for key, value in (expect or {}).items():
        if ckpt.get(key) != value:
            raise CheckpointError(
                f"{path.name} was written with {key} = {ckpt.get(key)!r}, but "
                f"this run has {key} = {value!r}; choose another checkpoint "
                "file or match the settings"
            )
    return ckpt


# ----------------------------------------------------------------------------- randomness


class PrivateRng:
    """A random stream of the job's own for what draws from torch's *global* generator
    (dropout masks), swapped in only inside ``with rng:`` blocks.

    The caller's global state is restored on exit, so the job neither disturbs nor depends on
    other code's random draws, and its state (:meth:`state_dict`) goes into checkpoints: a
    resumed run repeats an uninterrupted one exactly (CPU and CUDA; elsewhere dropout draws
    from the device's own generator). Never yield inside the block.
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.Generator().manual_seed(seed).get_state()
        self.cuda: torch.Tensor | None = None
        if device.type == "cuda":  # a fresh generator's state: the global one is not touched
            self.cuda = torch.Generator(device=device).manual_seed(seed).get_state()
        self._saved: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def __enter__(self) -> PrivateRng:
        outer_cuda = None
        if self.cuda is not None:
            outer_cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self.cuda, self.device)
        self._saved = (torch.get_rng_state(), outer_cuda)
        torch.set_rng_state(self.cpu)
        return self

    def __exit__(self, *exc: object) -> None:
        outer_cpu, outer_cuda = self._saved
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(outer_cpu)
        if outer_cuda is not None:
            self.cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(outer_cuda, self.device)
        self._saved = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"cpu": self.cpu.clone()}
        if self.cuda is not None:
            state["cuda"] = self.cuda.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.cpu = state["cpu"].clone()
        if self.cuda is not None and "cuda" in state:
            self.cuda = state["cuda"].clone()
