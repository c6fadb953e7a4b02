"""Adversarial patch on colour images of any shape: the patch stays inside its mask at every
scale and rotation (and the image is untouched outside it), a positive angle turns it clockwise
on screen (as Qt's ``setRotation``, so the panel's view and the model's input agree), EoT draws
and pastes are reproducible with a seed, and the success against patch size follows a closed
form on a model that only measures how much of the image is patched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advstudio.core.attacks.patch import (
    SCALE,
    fixed_placement,
    paste,
    retrained_size_curve_job,
    sample_placements,
    size_curve_job,
    train_patch,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, Progress, drive

COLOUR = torch.tensor([0.9, 0.1, 0.5])


@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 32, 24)])
def test_the_patch_stays_inside_its_mask_at_every_scale_and_rotation(shape):
    c, h, w = shape
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0))
    side = 6
    patch = COLOUR.view(3, 1, 1).expand(3, side, side).clone()
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    for scale in (0.5, 0.8, 1.0, 1.2, 1.6):
        for angle in (-90, -45, -22.5, 0, 10, 22.5, 45, 135):
            row, col = h / 2 + 0.3, w / 2 - 0.7
            out, mask = paste(x, patch, fixed_placement(1, row, col, angle, scale))
            m = mask[0, 0]
            # outside the mask the image is untouched, bit for bit
            assert torch.equal(out[0][:, m == 0], x[0][:, m == 0])
            # inside it is the patch; on its soft edge the blend of the two
            want = (1 - mask) * x + mask * COLOUR.view(1, 3, 1, 1)
            assert torch.allclose(out, want, atol=1e-5)
            assert torch.allclose(out[0][:, m == 1], COLOUR[:, None].expand(3, int((m == 1).sum())))
            # the mask lies inside the scaled patch's circumscribed circle ...
            radius = scale * side / math.sqrt(2) + 1
            dist = ((yy - row) ** 2 + (xx - col) ** 2).sqrt()
            assert (dist[m > 0] <= radius).all()
            # ... and covers the scaled patch's area (bilinear edges: within a perimeter)
            area = (scale * side) ** 2
            assert abs(float(m.sum()) - area) <= 4 * scale * side * 0.5 + 1


def test_a_positive_angle_turns_the_patch_clockwise_on_screen():
    x = torch.zeros(1, 3, 20, 20)
    patch = torch.zeros(3, 6, 6)
    patch[1, 0, 5] = 1  # the top-right pixel, green
    out, _ = paste(x, patch, fixed_placement(1, 10, 10, angle=0))
    assert (out[0, 1] > 0.5).nonzero().tolist() == [[7, 12]]
    out, _ = paste(x, patch, fixed_placement(1, 10, 10, angle=90))
    assert (out[0, 1] > 0.5).nonzero().tolist() == [[12, 12]]  # now bottom-right
    assert out[0, [0, 2]].abs().max() < 1e-6  # colour stays colour: no channel leaks


def test_eot_draws_and_pastes_are_reproducible_on_colour_images():
    x = torch.rand(6, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    patch = torch.rand(3, 7, 7, generator=torch.Generator().manual_seed(2))

    def draw(seed):
        where = sample_placements(6, 7, 32, 24, torch.Generator().manual_seed(seed))
        return paste(x, patch, where)[0]

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))


class PatchedShare(nn.Module):
    """Class 1 iff more than ``share`` of the image is red-channel-bright (a closed form of how
    much a pure red patch covers a black image), else class 0."""

    def __init__(self, share: float) -> None:
        super().__init__()
        self.share = share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, 0].flatten(1).mean(1)
        return torch.stack([torch.zeros_like(red), 1000 * (red - self.share)], 1)


def test_success_against_size_follows_the_closed_form():
    h = w = 32
    model = PatchedShare(0.1)
    x = torch.zeros(40, 3, h, w)
    patch = torch.zeros(3, 10, 10)
    patch[0] = 1
    areas = [0.02, 0.05, 0.1, 0.2, 0.3]
    out = drive(size_curve_job(model, x, patch, 1, areas, seed=5), keep_events=True)
    curve = out.result
    assert curve.areas == areas and len(curve.success) == len(areas) and not curve.retrained
    metrics = [e.values for e in out.events if isinstance(e, Metrics)]
    assert [m["area"] for m in metrics] == areas
    assert [m["success"] for m in metrics] == curve.success
    # the covered share is area * s^2, s uniform in SCALE: below 0.1 at every draw for the two
    # small sizes, above it at every draw for the two large ones; in between, about the
    # share of draws with area * s^2 > 0.1 (edges blur it a little)
    assert curve.success[:2] == [0.0, 0.0] and curve.success[3:] == [1.0, 1.0]
    s_min = math.sqrt(0.1 / 0.1)
    expected = (SCALE[1] - s_min) / (SCALE[1] - SCALE[0])
    assert abs(curve.success[2] - expected) < 0.25
    assert curve.success == sorted(curve.success)
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == len(areas)
    # the same seed gives the same curve
    assert drive(size_curve_job(model, x, patch, 1, areas, seed=5)).result.success == curve.success
    with pytest.raises(ConfigError, match="patch area"):
        drive(size_curve_job(model, x, patch, 1, [0.7]))


class BrightSpot(nn.Module):
    """Class 2 iff some 2 x 2 block of the green channel averages above 0.8, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spot = nn.functional.avg_pool2d(x[:, 1:2], 2, 1).flatten(1).amax(1)
        mean = x.flatten(1).mean(1)
        return torch.stack([3 * mean + 1, torch.zeros_like(mean), 20 * (spot - 0.8)], 1)


def test_a_colour_patch_is_trained_per_size_reproducibly():
    model = BrightSpot()
    x = 0.5 * torch.rand(48, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kwargs = dict(steps=30, batch_size=8, lr=0.05, seed=3)
    one = train_patch(model, x[:24], x[24:], 2, area=0.1, **kwargs)
    assert one.patch.shape == (3, 5, 5) and one.success > 0.5
    again = train_patch(model, x[:24], x[24:], 2, area=0.1, **kwargs)
    assert torch.equal(one.patch, again.patch)
    out = drive(
        retrained_size_curve_job(model, x[:24], x[24:], 2, [0.05, 0.1], **kwargs),
        keep_events=True,
    )
    curve = out.result
    assert curve.retrained and [p.shape[0] for p in curve.patches] == [3, 3]
    assert torch.equal(curve.patches[1], one.patch) and curve.success[1] == one.success
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    assert progress[-1].done == progress[-1].total and len({e.total for e in progress}) == 1
    assert [e.values["area"] for e in out.events if isinstance(e, Metrics)] == [0.05, 0.1]


def test_the_panels_data_is_cut_from_the_chosen_set_at_the_models_shape(tmp_path):
    from advstudio.core.attacks.patch import train_test_images
    from advstudio.core.data.sets import load_dataset
    from tests.core.colour_data import colour_classifier, colour_folder

    root = colour_folder(tmp_path / "shapes", per_class=3)  # 30 images and two junk files
    model = colour_classifier()
    x_train, x_test, lines = train_test_images(f"folder:{root}", "all", "none", model, 10, 12)
    assert x_train.shape == (10, 3, 32, 32) and x_test.shape == (12, 3, 32, 32)
    everything = load_dataset(f"folder:{root}", "all").x
    for x in torch.cat([x_train, x_test]):  # a seeded subset, no image twice
        assert int(((everything - x).flatten(1).abs().amax(1) == 0).sum()) == 1
    assert lines[0].startswith("data: ") and any("skipped" in line for line in lines)
    # fewer images than asked: cut in the same proportion (30 -> 15 / 15)
    x_train, x_test, _ = train_test_images(f"folder:{root}", "all", "none", model, 100, 100)
    assert (len(x_train), len(x_test)) == (15, 15)
    # grey digits for a colour model: refused as they are, converted when asked
    with pytest.raises(ConfigError, match="choose fit 'resize'"):
        train_test_images("digits", "test", "none", model, 4, 4)
    x_train, _, lines = train_test_images("digits", "test", "resize", model, 4, 4)
    assert x_train.shape == (4, 3, 32, 32) and any("grey → RGB" in line for line in lines)
