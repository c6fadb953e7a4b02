"""What the defence jobs share: labelled data (the digits or any grey set of the shared
data-set choice), held-out subsets, atomic files, checkpoints and a private random stream for
dropout.

The defence jobs build the digit architectures, so their pixels are float32 in [0, 1],
(N, 1, 28, 28), labels int64 in [0, 10): :func:`defence_sets` refuses a colour set with a
message, and resizes a grey one to 28×28 (and says so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advstudio.core.atomic import atomic_torch_save
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.errors import CheckpointError, ConfigError
from advstudio.core.training import check_pixels, read_checkpoint

Data = tuple[torch.Tensor, torch.Tensor]
IMAGE_SHAPE = (1, 28, 28)
CHECKPOINT_FORMAT = "advstudio-defence-checkpoint"
CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------------- data


def check_data(data: Any, what: str = "data") -> Data:
    """``(x, y)`` validated: x (N, 1, 28, 28) or (N, 28, 28) float in [0, 1] (or uint8),
    y (N,) integer classes in [0, 10). Returned on the CPU as float32 / int64."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ConfigError(f"{what} must be a pair (x, y) of tensors, not {type(data).__name__}")
    x, y = (torch.as_tensor(v) for v in data)
    x, y = x.detach().cpu(), y.detach().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ConfigError(f"{what}: images must have shape (N, 1, 28, 28), not {tuple(x.shape)}")
    x = check_pixels(x, what)
    if y.dim() != 1 or len(y) != len(x):
        raise ConfigError(
            f"{what}: need one label per image; got labels of shape "
            f"{tuple(y.shape)} for {len(x)} images"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ConfigError(f"{what}: labels must be integer classes, not {y.dtype}")
    y = y.long()
    bad = y[(y < 0) | (y >= len(DIGIT_CLASSES))]
    if bad.numel():
        raise ConfigError(
            f"{what}: label {int(bad[0])} is out of range; digit classes are "
            f"0 to {len(DIGIT_CLASSES) - 1}"
        )
    return x, y


def fake_digits(n: int, seed: int) -> Data:
    """``n`` random-pixel images with random labels: the dry-run data (nothing loaded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *IMAGE_SHAPE, generator=g), torch.randint(0, 10, (n,), generator=g)


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
            f"{dataset} holds {data.description.split(',')[0]} images, but the networks this "
            "job builds are the digit architectures (1×28×28 grey); colour sets cannot train "
            "here yet (a colour architecture comes later), so choose a grey set"
        )
    if len(data.class_names) > len(DIGIT_CLASSES):
        raise ConfigError(
            f"{dataset} has {len(data.class_names)} classes; the digit "
            f"architectures have {len(DIGIT_CLASSES)} outputs, so at most "
            f"{len(DIGIT_CLASSES)} classes"
        )
    x, note = fit_to_model(data.x, IMAGE_SHAPE, "resize")
    return (x, data.y), note


def defence_sets(
    dataset: str, eval_images: int | None, seed: int, train_images: int = 0
) -> tuple[Data, Data, list[str]]:
    """``(train, held-out, log lines)`` of ``dataset`` for a defence job: the train split
    (``train_images`` of it drawn with ``seed``, 0 = all) and ``eval_images`` of the test split
    (0 = none, None = all), checked and fitted by :func:`_for_digit_networks`. The lines name the
    set,
    what was skipped (issue #18: unreadable files are never dropped silently) and the fit."""
    from advstudio.core.data.sets import load_dataset

    if dataset == "digits":
        train = (
            subset(load_digits("train"), train_images, seed)
            if train_images
            else (load_digits("train"))
        )
        empty = (torch.empty(0, *IMAGE_SHAPE), torch.empty(0, dtype=torch.long))
        held = heldout_digits(eval_images or 0, seed) if eval_images != 0 else empty
        return train, held, []
    parts = [load_dataset(dataset, "train", limit=train_images, seed=seed)]
    if eval_images is None or eval_images:
        parts.append(load_dataset(dataset, "test", limit=eval_images or 0, seed=seed))
    lines, fitted = [], []
    for part in parts:
        lines.append(
            f"data: {dataset} ({'train' if part is parts[0] else 'test'}), {part.description}"
        )
        if part.skipped:
            lines.append(part.skipped_line())
        pair, note = _for_digit_networks(part, dataset)
        fitted.append(pair)
        if note:
            lines.append(f"fitted to the digit networks: {note}")
    if len(fitted) == 1:
        fitted.append((torch.empty(0, *IMAGE_SHAPE), torch.empty(0, dtype=torch.long)))
    return fitted[0], fitted[1], lines


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module.state_dict()``."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- files

atomic_save = atomic_torch_save  # the defence jobs' name for it


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
