"""Data sets: the bundled digits (offline) and helpers to batch them.

Pixels are float32 in [0, 1], shape (N, 1, 28, 28); labels int64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from advstudio.core.resources import resources_dir

DIGIT_CLASSES = [str(i) for i in range(10)]


@lru_cache(maxsize=1)
def _digits_npz() -> dict[str, np.ndarray]:
    with np.load(resources_dir() / "digits" / "digits.npz") as z:
        return {k: z[k] for k in z.files}


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled MNIST digits: ``split`` is ``"train"`` (4,000) or ``"test"`` (1,000).

    Returns ``(x, y)`` with ``x`` float32 in [0, 1] of shape (N, 1, 28, 28) and ``y`` int64 (N,).
    Fresh tensors each call, so callers may modify them.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    z = _digits_npz()
    x = torch.from_numpy(z[f"x_{split}"].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(z[f"y_{split}"].astype(np.int64))
    return x, y


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None):
    """Yield ``(xb, yb)`` mini-batches; the last one may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    n = len(x)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]
