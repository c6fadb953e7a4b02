"""Find what input a model takes by trying it: pre-fills a card, never replaces one.

A probe can tell the shape a net accepts and how many outputs it has; it cannot tell the
normalisation, the pixel scale or the class names, which is why a card is still asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core.models.frozen import first_tensor

CANDIDATE_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 28, 28),
    (3, 32, 32),
    (3, 224, 224),
    (1, 32, 32),
    (3, 64, 64),
    (3, 96, 96),
    (3, 299, 299),
)
"""Shapes tried when the file does not declare one, the common data sets' first."""


@dataclass(frozen=True)
class ProbeResult:
    """``input_shape`` the first shape that gave (1, K) logits (None: none did), ``num_classes``
    K, ``tried`` every shape tried, ``errors`` the first line of each failure."""

    input_shape: tuple[int, int, int] | None
    num_classes: int | None
    tried: tuple[tuple[int, int, int], ...]
    errors: tuple[str, ...]

    def describe(self) -> str:
        tried = ", ".join("×".join(map(str, s)) for s in self.tried)
        if self.input_shape is None:
            return f"no input shape worked (tried {tried})"
        shape = "×".join(map(str, self.input_shape))
        return f"a probe found {shape} input and {self.num_classes} classes (tried {tried})"


_watcher: Callable[[str, tuple[int, ...]], None] | None = None


@contextmanager
def watching_forwards(watcher: Callable[[str, tuple[int, ...]], None]):
    """Call ``watcher("start", shape)`` before and ``watcher("end", shape)`` after each probe
    forward inside the block: the probe's child process reports them, so its parent can time
    each forward pass (:mod:`advstudio.core.models.isolation`)."""
    global _watcher
    previous, _watcher = _watcher, watcher
    try:
        yield
    finally:
        _watcher = previous


def forward_classes(net: nn.Module, shape: tuple[int, ...]) -> int:
    """The number of logits ``net`` returns for one blank image of ``shape``; raises whatever
    the net raises, or ValueError when the output is not (1, K) logits."""
    watcher = _watcher
    if watcher is not None:
        watcher("start", tuple(shape))
    with torch.no_grad():
        out = net(torch.zeros(1, *shape))
    if watcher is not None:
        watcher("end", tuple(shape))
    out = first_tensor(out)
    if out.dim() != 2 or out.shape[0] != 1:
        raise ValueError(f"the model returns shape {tuple(out.shape)}, not (1, classes) logits")
    return int(out.shape[1])


def probe(net: nn.Module, declared: tuple[int, ...] | None = None) -> ProbeResult:
    """Try ``declared`` (the file's own input shape) first, then :data:`CANDIDATE_SHAPES`."""
    shapes = [tuple(declared)] if declared else []
    shapes += [s for s in CANDIDATE_SHAPES if s not in shapes]
    tried, errors = [], []
    for shape in shapes:
        tried.append(shape)
        try:
            k = forward_classes(net, shape)
        except Exception as exc:  # any failure means "not this shape"
            text = str(exc).strip()
            errors.append(
                f"{'×'.join(map(str, shape))}: "
                f"{text.splitlines()[0] if text else type(exc).__name__}"
            )
            continue
        return ProbeResult(shape, k, tuple(tried), tuple(errors))
    return ProbeResult(None, None, tuple(tried), tuple(errors))
