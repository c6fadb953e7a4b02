"""Perturbations made visible: a diverging colour map (blue = darker, white = unchanged,
red = brighter), amplified so that an eps of a few grey levels is still seen."""

from __future__ import annotations

import numpy as np


def perturbation_rgb(delta: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """(H, W, C) signed perturbation -> ((H, W, 3) uint8 image, amplification factor).

    Channels are averaged; ``scale`` is the |delta| shown at full colour (default: the largest
    |delta|, so the strongest change is saturated). The factor is ``1 / scale``.
    """
    d = np.asarray(delta, dtype=np.float32)
    d = d.mean(axis=2) if d.ndim == 3 else d
    peak = float(np.abs(d).max()) if scale is None else float(scale)
    if peak <= 0:
        return np.full((*d.shape, 3), 255, np.uint8), 1.0
    t = np.clip(d / peak, -1.0, 1.0)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    rgb = np.empty((*d.shape, 3), np.float32)
    # white -> red (178, 24, 43) for positive, white -> blue (33, 102, 172) for negative (RdBu)
    for c, (r_end, b_end) in enumerate(((178, 33), (24, 102), (43, 172))):
        rgb[..., c] = 255 - pos * (255 - r_end) - neg * (255 - b_end)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), 1.0 / peak
