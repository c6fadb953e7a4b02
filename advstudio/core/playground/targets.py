"""The 2-D target distributions of the GAN playground, and the "modes" its metrics count.

Every target lives in the fixed view box ``VIEW`` (x and y in [-3, 3]) and is described by
*reference points* with a *mode label* each and one noise standard deviation ``sd``:

- ``ring``: 8 Gaussians (sd 0.05) centred on a circle of radius 2. Reference points = the 8
  centres, one mode each (as in Metz et al. 2017, "Unrolled GANs", and VEEGAN).
- ``grid``: 25 Gaussians (sd 0.05) centred on the 5x5 grid {-2, -1, 0, 1, 2}^2; 25 modes.
- ``spiral``: a two-turn Archimedean spiral with Gaussian noise (sd 0.05). Reference points =
  1,000 points along the noiseless curve; the curve is cut into ``SPIRAL_ARCS`` arcs of equal
  parameter length and each arc is one "mode" (covering the spiral = covering every arc).
- ``moons``: two interleaved half circles (as sklearn's ``make_moons``, scaled by 1.5) with
  noise sd 0.05; each moon is one mode.
- ``drawn``: the user's points, each the centre of a small Gaussian (sd 0.05). Points closer than
  ``DRAWN_LINK`` to each other chain into one mode, so a dragged stroke is one mode and separate
  clicks are separate modes.

Sampling is in torch (one call per training batch, no numpy round trip) from a caller's seeded
``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from advstudio.core.errors import ConfigError

VIEW = (-3.0, 3.0, -3.0, 3.0)  # xmin, xmax, ymin, ymax of every target and of the plot
SD = 0.05
SPIRAL_ARCS = 8
SPIRAL_REFERENCE = 1000
DRAWN_LINK = 4 * SD  # drawn points closer than this belong to the same mode
MAX_DRAWN_POINTS = 5000
TARGET_NAMES = {
    "ring": "Ring of 8 Gaussians",
    "grid": "5×5 grid of Gaussians",
    "spiral": "Spiral",
    "moons": "Two moons",
    "drawn": "Drawn points",
}


@dataclass(frozen=True, eq=False)
class Target:
    """A 2-D distribution: ``sample(n, generator)`` draws (n, 2) float32 points.

    ``reference`` (m, 2) float32 and ``labels`` (m,) int64 describe where the data lies: a point
    is "high quality" when it is within 3 ``sd`` of a reference point, and it counts towards
    the mode of the nearest one. ``curve`` is True when the reference points trace a curve (the
    data is curve + noise) rather than being Gaussian centres (the data is centre + noise).
    Compared by identity: a changed target is a new object.
    """

    key: str
    reference: np.ndarray
    labels: np.ndarray
    sd: float = SD
    curve: bool = False
    name: str = ""
    _ref: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ref", torch.as_tensor(self.reference, dtype=torch.float32))

    @property
    def n_modes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points: a uniformly chosen reference point plus N(0, sd^2) noise. For the
        Gaussian targets that is exactly the mixture; for the curves, the reference points are
        spaced evenly enough along the curve (1,000 on the spiral, 0.02 apart at most, well
        under one sd) that this is the noisy curve."""
        idx = torch.randint(len(self._ref), (n,), generator=generator)
        return self._ref[idx] + self.sd * torch.randn(n, 2, generator=generator)


def ring(n_modes: int = 8, radius: float = 2.0, sd: float = SD) -> Target:
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    return Target(
        "ring", centres.astype(np.float32), np.arange(n_modes), sd, name=TARGET_NAMES["ring"]
    )


def grid(side: int = 5, spacing: float = 1.0, sd: float = SD) -> Target:
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    xx, yy = np.meshgrid(ticks, ticks, indexing="xy")
    centres = np.stack([xx.ravel(), yy.ravel()], 1)
    return Target(
        "grid", centres.astype(np.float32), np.arange(side * side), sd, name=TARGET_NAMES["grid"]
    )


def spiral(
    turns: float = 2.0,
    radius: float = 2.5,
    sd: float = SD,
    arcs: int = SPIRAL_ARCS,
    n_reference: int = SPIRAL_REFERENCE,
) -> Target:
    """r grows linearly with the angle from 0.25 * radius to radius over ``turns`` turns."""
    t = np.linspace(0.0, 1.0, n_reference)
    theta = 2 * np.pi * turns * t
    r = radius * (0.25 + 0.75 * t)
    points = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    labels = np.minimum((t * arcs).astype(np.int64), arcs - 1)
    return Target(
        "spiral", points.astype(np.float32), labels, sd, curve=True, name=TARGET_NAMES["spiral"]
    )


def moons(scale: float = 1.5, sd: float = SD, n_reference: int = 500) -> Target:
    t = np.linspace(0.0, np.pi, n_reference)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    points = (np.concatenate([upper, lower]) - [0.5, 0.25]) * scale
    labels = np.repeat([0, 1], n_reference)
    return Target(
        "moons", points.astype(np.float32), labels, sd, curve=True, name=TARGET_NAMES["moons"]
    )


def drawn(points, sd: float = SD) -> Target:
    """The user's points (x, y pairs in the view box), each the centre of a Gaussian."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2) if len(points) else np.empty((0, 2))
    if len(pts) == 0:
        raise ConfigError(
            "Draw at least one point on the plot first (tick Draw, then click or "
            "drag on the plot), or pick another distribution."
        )
    if len(pts) > MAX_DRAWN_POINTS:
        raise ConfigError(
            f"{len(pts):,} drawn points is too many; at most "
            f"{MAX_DRAWN_POINTS:,} are allowed. Clear some and draw again."
        )
    if not np.isfinite(pts).all():
        raise ConfigError("Drawn points must be finite numbers.")
    xmin, xmax, ymin, ymax = VIEW
    pts = np.clip(pts, [xmin, ymin], [xmax, ymax]).astype(np.float32)
    return Target("drawn", pts, _link_components(pts, DRAWN_LINK), sd, name=TARGET_NAMES["drawn"])


def _link_components(points: np.ndarray, link: float) -> np.ndarray:
    """Labels 0..k-1 of the groups of points connected by chains of steps shorter than ``link``
    (single-linkage clustering, union-find; numbered in order of first appearance)."""
    n = len(points)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, 512):  # blocks keep the distance matrix small
        block = points[start : start + 512]
        d2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(-1)
        for i, j in zip(*np.nonzero(d2 < link * link)):
            a, b = root(start + int(i)), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = [root(i) for i in range(n)]
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(r, len(numbering)) for r in roots], dtype=np.int64)


_BUILDERS = {"ring": ring, "grid": grid, "spiral": spiral, "moons": moons}


def make_target(key: str, points=()) -> Target:
    """The target called ``key`` (one of ``TARGET_NAMES``); ``points`` for ``"drawn"``."""
    if key == "drawn":
        return drawn(points)
    if key not in _BUILDERS:
        raise ConfigError(f"Unknown distribution {key!r}; choose one of {', '.join(TARGET_NAMES)}.")
    return _BUILDERS[key]()
