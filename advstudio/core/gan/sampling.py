"""Drawing from a generator: samples in [0, 1], latent interpolation, image grids for display.

Generators work in [-1, 1] (tanh); everything here hands back pixels in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def to_signed(x01: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] -> [-1, 1], the scale GANs train in."""
    return x01 * 2.0 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> pixels in [0, 1] (clamped)."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def generate(
    generator: nn.Module, z: torch.Tensor, batch_size: int = 250, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Images in [0, 1] (N, C, H, W) on the CPU for latents ``z`` (N, latent_dim) and, for a
    conditional generator, their classes ``labels`` (N,).

    Runs in eval mode (BatchNorm uses its running statistics, so a sample does not depend on
    the other samples of its batch and drawing does not change the network) and restores the
    previous mode afterwards.
    """
    was_training = generator.training
    generator.eval()
    device = _device_of(generator)
    try:
        ys = [None] * len(z.split(batch_size)) if labels is None else labels.split(batch_size)
        out = [
            to_unit(generator(chunk.to(device), None if y is None else y.to(device))).cpu()
            for chunk, y in zip(z.split(batch_size), ys)
        ]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def interpolate(
    generator: nn.Module,
    z0: torch.Tensor,
    z1: torch.Tensor,
    n: int = 8,
    spherical: bool = False,
    label: int | None = None,
) -> torch.Tensor:
    """``n`` images in [0, 1] along the latent path from ``z0`` to ``z1`` (both ends included).

    ``label``: the class of every image for a conditional generator. ``spherical`` uses slerp,
    which keeps intermediate latents at the norm typical of Gaussian
    noise (linear midpoints of two random vectors are shorter than either).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 to include both ends, not {n}")
    z0, z1 = z0.reshape(-1).float().cpu(), z1.reshape(-1).float().cpu()
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 differ in shape: {tuple(z0.shape)} vs {tuple(z1.shape)}")
    t = torch.linspace(0.0, 1.0, n).unsqueeze(1)
    if spherical:
        cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
        omega = torch.arccos(cos.clamp(-1.0, 1.0))
        if float(omega.sin()) < 1e-6:  # (anti)parallel: slerp degenerates to lerp
            zs = (1 - t) * z0 + t * z1
        else:
            zs = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / omega.sin()
    else:
        zs = (1 - t) * z0 + t * z1
    return generate(generator, zs, labels=None if label is None else torch.full((n,), label))


def class_samples(
    generator: nn.Module, latent_dim: int, label: int, n: int = 64, seed: int = 0
) -> torch.Tensor:
    """``n`` samples in [0, 1] of class ``label`` from a conditional generator, from noise
    seeded with ``seed`` (the same noise for every class, so classes compare like for like)."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return generate(generator, z, labels=torch.full((n,), int(label)))


def sample_grid(images, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one float32 array for display.

    Returns (rows, cols) for one channel and (rows, cols, C) for three, values in [0, 1], with
    ``padding`` pixels of ``pad_value`` between and around the tiles; ``nrow`` tiles per row.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected images of shape (N, C, H, W), got {images.shape}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, not {nrow}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full(
        (c, rows * (h + padding) + padding, cols * (w + padding) + padding),
        pad_value,
        dtype=np.float32,
    )
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    np.clip(grid, 0.0, 1.0, out=grid)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)
