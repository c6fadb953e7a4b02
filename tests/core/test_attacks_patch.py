"""Adversarial patch: pasting is exact where it has a closed form (an unrotated patch at scale 1
on the pixel grid lands on its pixels), the image changes only inside the mask, EoT draws are
reproducible with a seed, and a trained patch reaches its target on a tiny bright-spot detector."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.attacks.patch import (
    fixed_placement,
    paste,
    patch_side,
    sample_placements,
    save_patch,
    train_patch,
)
from advstudio.core.errors import ConfigError


def test_unrotated_patch_lands_on_its_pixels():
    x = torch.rand(2, 3, 12, 10)
    patch = torch.rand(3, 4, 4)
    out, mask = paste(x, patch, fixed_placement(2, row=5.0, col=3.0))  # top-left (3, 1)
    assert torch.allclose(out[:, :, 3:7, 1:5], patch.expand(2, -1, -1, -1), atol=1e-5)
    assert torch.allclose(mask[:, 0, 3:7, 1:5], torch.ones(2, 4, 4), atol=1e-5)
    outside = torch.ones(12, 10, dtype=torch.bool)
    outside[3:7, 1:5] = False
    assert torch.allclose(out[:, :, outside], x[:, :, outside], atol=1e-6)


def test_the_patch_stays_inside_its_mask():
    x = torch.rand(16, 1, 28, 28)
    side = patch_side(0.1, 28, 28)
    assert side == 9
    gen = torch.Generator().manual_seed(0)
    out, mask = paste(x, torch.rand(1, side, side), sample_placements(16, side, 28, 28, gen))
    assert torch.equal(out[mask.expand_as(x) == 0], x[mask.expand_as(x) == 0])
    assert ((mask > 0).flatten(1).sum(1) > 0).all()
    # the mask's area is the scaled patch's (bilinear edges: within a perimeter's worth)
    assert (mask.flatten(1).sum(1) - 81 * 1.0).abs().max() < 0.5 * 81


def test_eot_placements_are_reproducible_with_a_seed():
    a = sample_placements(8, 9, 28, 28, torch.Generator().manual_seed(5))
    b = sample_placements(8, 9, 28, 28, torch.Generator().manual_seed(5))
    c = sample_placements(8, 9, 28, 28, torch.Generator().manual_seed(6))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("angle", "scale", "row", "col"))
    assert not torch.equal(a.row, c.row)
    radius = a.scale * 9 / 2**0.5
    assert ((a.row >= radius - 1e-5) & (a.row <= 28 - radius + 1e-5)).all()


class BrightSpot(nn.Module):
    """Class 2 iff some 2 x 2 block averages above 0.8 (anywhere: a patch can do it), else class
    0; class 1 never wins."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spot = nn.functional.avg_pool2d(x, 2, 1).flatten(1).amax(1)
        mean = x.flatten(1).mean(1)
        return torch.stack([3 * mean + 1, torch.zeros_like(mean), 20 * (spot - 0.8)], 1)


def test_a_trained_patch_reaches_its_target(tmp_path):
    model = BrightSpot()
    x = 0.5 * torch.rand(80, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    res = train_patch(model, x[:40], x[40:], 2, area=0.2, steps=60, batch_size=16, lr=0.05)
    assert res.patch.shape == (1, 4, 4) and 0 <= res.patch.min() and res.patch.max() <= 1
    assert res.success > 0.5 and res.history[-1] < res.history[0]
    png = save_patch(res.patch, tmp_path / "patch.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="target must be a class in"):
        train_patch(model, x[:4], x[4:8], 3, steps=1)
