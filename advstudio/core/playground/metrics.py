"""What the playground measures: modes covered, share of high-quality samples, and two warnings
(mode collapse, oscillation).

Definitions (after VEEGAN, Srivastava et al. 2017, and Unrolled GANs, Metz et al. 2017):

- A generated sample is **high quality** when it lies within ``3 * sd`` of a reference point of
  the target (a Gaussian centre, or a point of the noiseless curve; see ``targets``).
- Each high-quality sample counts towards the mode of its *nearest* reference point. A mode is
  **covered** when it holds at least ``max(1, ceil(MIN_FAIR_SHARE * n / n_modes))`` of the
  ``n`` samples, i.e. a fifth of the share a perfect generator would give it. The playground
  measures G's image of 1,000 fixed noise vectors: on the 8-Gaussian ring a mode then needs 25
  samples (2.5 %), on the 25-Gaussian grid 8 (0.8 %, close to VEEGAN's 20 of 2,500).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from advstudio.core.playground.targets import Target

MIN_FAIR_SHARE = 0.2
COLLAPSE_WARMUP = 500  # steps before the collapse warning may fire
OSCILLATION_WINDOW = 400  # steps of loss_g the oscillation test looks at
OSCILLATION_BLOCK = 20


@dataclass(frozen=True)
class Coverage:
    """``counts[k]``: high-quality samples whose nearest reference point belongs to mode k."""

    modes_covered: int
    n_modes: int
    quality: float  # share of samples within 3 sd of the target, in [0, 1]
    counts: np.ndarray
    threshold: int  # samples a mode needs to count as covered


def coverage(samples, target: Target, min_fair_share: float = MIN_FAIR_SHARE) -> Coverage:
    """Modes covered and high-quality share of ``samples`` (n, 2), as defined above."""
    x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1, 2)
    n, k = len(x), target.n_modes
    threshold = max(1, math.ceil(min_fair_share * n / max(k, 1)))
    if n == 0:
        return Coverage(0, k, 0.0, np.zeros(k, np.int64), threshold)
    dist, nearest = torch.cdist(x, target._ref).min(1)
    good = dist <= 3 * target.sd
    labels = torch.as_tensor(target.labels)[nearest[good]]
    counts = torch.bincount(labels, minlength=k).numpy()
    return Coverage(
        int((counts >= threshold).sum()), k, float(good.float().mean()), counts, threshold
    )


def oscillating(
    values, block: int = OSCILLATION_BLOCK, min_swings: int = 3, min_ratio: float = 3.0
) -> bool:
    """True when a loss curve swings up and down rather than jittering or drifting.

    The curve is cut into blocks of ``block`` steps. Their means must spread (standard
    deviation) at least ``min_ratio`` times the standard error that step-to-step noise alone
    would give them (the pooled within-block deviation / sqrt(block)), and they must move between
    "high" (above median + half that spread) and "low" (below median - half of it) at least
    ``min_swings`` times. A steady trend makes one such move, noise has no spread, a swing of
    period P blocks makes two moves per period.
    """
    v = np.asarray(values, dtype=np.float64)
    nb = len(v) // block
    if nb < 4 or not np.isfinite(v).all():
        return False
    blocks = v[len(v) - nb * block :].reshape(nb, block)
    means = blocks.mean(1)
    noise = math.sqrt(((blocks - means[:, None]) ** 2).sum() / (nb * (block - 1)))
    spread = float(means.std())
    if spread <= min_ratio * noise / math.sqrt(block) or spread == 0.0:
        return False
    centre = float(np.median(means))
    swings, state = 0, 0
    for m in means:
        now = 1 if m > centre + spread / 2 else -1 if m < centre - spread / 2 else 0
        if now and now != state:
            swings += state != 0
            state = now
    return swings >= min_swings


class Diagnostics:
    """The two warnings, fed step by step by the playground job.

    ``collapse``: after ``COLLAPSE_WARMUP`` steps, fewer than half of the target's modes are
    covered (needs a target with at least 2 modes). ``oscillation``: :func:`oscillating` on the
    last ``OSCILLATION_WINDOW`` generator losses.
    """

    def __init__(self, window: int = OSCILLATION_WINDOW, warmup: int = COLLAPSE_WARMUP) -> None:
        self.loss_g: deque[float] = deque(maxlen=window)
        self.warmup = warmup
        self.coverage: Coverage | None = None
        self.step = 0

    def reset(self) -> None:
        self.loss_g.clear()
        self.coverage = None

    def add_step(self, step: int, loss_g: float) -> None:
        self.step = step
        self.loss_g.append(loss_g)

    def add_coverage(self, cov: Coverage) -> None:
        self.coverage = cov

    @property
    def collapse(self) -> bool:
        c = self.coverage
        return (
            c is not None
            and self.step >= self.warmup
            and c.n_modes >= 2
            and c.modes_covered < c.n_modes / 2
        )

    @property
    def oscillation(self) -> bool:
        return len(self.loss_g) == self.loss_g.maxlen and oscillating(self.loss_g)
