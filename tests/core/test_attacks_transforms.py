"""Input-transform defences: closed forms, gradient masking vs BPDA, feature squeezing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.attacks.transforms import (
    BitDepth,
    Defended,
    FeatureSqueezingDetector,
    JpegCompression,
    MedianSmoothing,
    defended,
)
from advstudio.core.attacks.whitebox import fgsm, gradient_and_logits, pgd
from advstudio.core.errors import AttackError, ConfigError
from tests.core.helpers import accuracy


@pytest.fixture(scope="module")
def digits():
    return sweep_images(400, seed=0)


def _input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x, allow_unused=True)[0]


# --------------------------------------------------------------------------- bit depth


def test_bit_depth_closed_form():
    x = torch.tensor([0.0, 0.1, 0.49, 0.51, 0.7, 1.0]).view(1, 1, 2, 3)
    assert torch.equal(BitDepth(1)(x).flatten(), torch.tensor([0.0, 0, 0, 1, 1, 1]))
    # 2 bits: levels 0, 1/3, 2/3, 1; thresholds at 1/6, 1/2, 5/6
    expected = torch.tensor([0, 0, 1, 2, 2, 3]) / 3
    assert torch.allclose(BitDepth(2)(x).flatten(), expected)
    grid = torch.arange(256.0).view(1, 1, 16, 16) / 255
    assert torch.equal(BitDepth(8)(grid), grid)  # 8 bits: the PNG grid
    rand = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    for bits in range(1, 9):
        out = BitDepth(bits)(rand)
        levels = 2**bits - 1
        assert torch.allclose(out * levels, torch.round(out * levels), atol=1e-4)
        assert (out - rand).abs().max() <= 0.5 / levels + 1e-6


# --------------------------------------------------------------------------- median


def _median_reference(img: np.ndarray, k: int) -> np.ndarray:
    """Loops: edge padding, k // 2 before and (k - 1) // 2 after, upper middle value."""
    before, after = k // 2, (k - 1) // 2
    p = np.pad(img, ((before, after), (before, after)), mode="edge")
    out = np.empty_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            out[i, j] = np.sort(p[i : i + k, j : j + k].ravel())[(k * k) // 2]
    return out


def test_median_closed_form():
    x = torch.arange(9.0).view(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    # window 3, edge padding: top-left window 0 0 1 / 0 0 1 / 3 3 4 -> median 1; centre 4;
    # bottom-left 3 3 4 / 6 6 7 / 6 6 7 -> 6
    assert torch.equal(
        MedianSmoothing(3)(x)[0, 0], torch.tensor([[1.0, 2, 2], [3, 4, 5], [6, 6, 7]])
    )
    # window 2 covers the pixel, its upper and left neighbours; upper middle of 4 values
    assert torch.equal(
        MedianSmoothing(2)(x)[0, 0], torch.tensor([[0.0, 1, 2], [3, 3, 4], [6, 6, 7]])
    )
    assert torch.equal(MedianSmoothing(1)(x), x)


def test_median_matches_loops_per_channel_and_removes_salt():
    rand = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(1))
    for k in (2, 3, 4, 5):
        out = MedianSmoothing(k)(rand)
        assert out.shape == rand.shape
        for n in range(2):
            for c in range(3):
                np.testing.assert_array_equal(
                    out[n, c].numpy(), _median_reference(rand[n, c].numpy(), k)
                )
    salt = torch.zeros(1, 1, 5, 5)
    salt[0, 0, 2, 2] = 1.0
    assert torch.equal(MedianSmoothing(3)(salt), torch.zeros_like(salt))
    assert torch.equal(MedianSmoothing(2)(salt), torch.zeros_like(salt))


# --------------------------------------------------------------------------- JPEG


def test_jpeg_quality_100_is_almost_the_identity(digits):
    x = digits[0][:16]  # gray, on the 1/255 grid
    out = JpegCompression(100)(x)
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert torch.allclose(out * 255, torch.round(out * 255), atol=1e-3)  # 8-bit round trip
    assert (out - x).abs().mean() < 1 / 255 and (out - x).abs().max() <= 8 / 255
    # smooth colour image (4:2:0 chroma subsampling costs little there)
    ramp = torch.linspace(0, 1, 32)
    rgb = torch.stack(
        [ramp[None].expand(32, 32), ramp[:, None].expand(32, 32), torch.full((32, 32), 0.5)]
    )[None]
    assert (JpegCompression(100)(rgb) - rgb).abs().max() <= 8 / 255
    err = {q: float((JpegCompression(q)(x) - x).abs().mean()) for q in (10, 50, 100)}
    assert err[10] > err[50] > err[100]


def test_jpeg_rejects_other_channel_counts():
    with pytest.raises(ConfigError, match="1 .gray. or 3 .RGB."):
        JpegCompression(75)(torch.rand(1, 4, 8, 8))


@pytest.mark.parametrize(
    "make, bad, allowed",
    [
        (JpegCompression, 0, "from 1 to 100"),
        (JpegCompression, 101, "from 1 to 100"),
        (JpegCompression, 50.5, "from 1 to 100"),
        (JpegCompression, True, "from 1 to 100"),
        (BitDepth, 0, "from 1 to 8"),
        (BitDepth, 9, "from 1 to 8"),
        (BitDepth, 2.0, "from 1 to 8"),
        (MedianSmoothing, 0, ">= 1"),
        (MedianSmoothing, -3, ">= 1"),
        (MedianSmoothing, 3.0, ">= 1"),
    ],
)
def test_validation_names_the_allowed_values(make, bad, allowed):
    with pytest.raises(ConfigError, match=allowed):
        make(bad)


# --------------------------------------------------------------------------- Defended / BPDA


def test_defended_keeps_the_classifier_interface(cnn, digits):
    x = digits[0][:8]
    shield = defended(cnn, BitDepth(2))
    assert isinstance(shield, Defended) and isinstance(shield, nn.Module)
    assert shield.class_names == cnn.class_names and shield.input_shape == cnn.input_shape
    assert shield.num_classes == 10 and shield.device == cnn.device
    assert "bits=2" in shield.name
    with torch.no_grad():
        assert torch.equal(shield.logits(x), cnn(BitDepth(2)(x)))
        assert torch.equal(defended(cnn, BitDepth(2), bpda=True)(x), shield(x))
    preds = shield.predict(x, k=3)
    assert len(preds) == 8 and len(preds[0].indices) == 3
    assert not any(m.training for m in cnn.modules())  # predict left the model in eval mode
    assert shield.prepare(x).shape == (8, 1, 28, 28)


def test_plain_mode_masks_the_gradient_and_bpda_passes_it_straight_through(cnn, digits):
    x, y = digits[0][:8], digits[1][:8]
    assert torch.equal(_input_grad(defended(cnn, BitDepth(2)), x, y), torch.zeros_like(x))
    assert _input_grad(defended(cnn, JpegCompression(75)), x, y) is None
    for transform in (BitDepth(2), JpegCompression(75), MedianSmoothing(3)):
        # identity backward: d loss(f(t(x))) / dx == d loss(f(z)) / dz at z = t(x)
        expected = _input_grad(cnn, transform(x), y)
        got = _input_grad(defended(cnn, transform, bpda=True), x, y)
        assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(AttackError, match="no gradient"):
        gradient_and_logits(defended(cnn, JpegCompression(75)), x, y, False)


def test_bpda_breaks_bit_depth_where_plain_pgd_fails(cnn, digits):
    # 2 bits: every pixel can change level within eps = 0.3, yet the rounding's gradient is
    # zero everywhere, so plain PGD only has its random start
    x, y = digits[0][:32], digits[1][:32]
    plain, bpda = defended(cnn, BitDepth(2)), defended(cnn, BitDepth(2), bpda=True)
    clean = accuracy(plain, x, y)
    assert clean >= 0.9

    def attack(model):
        return pgd(
            model, x, y, 0.3, alpha=0.05, steps=10, generator=torch.Generator().manual_seed(0)
        )

    assert accuracy(plain, attack(plain), y) >= clean - 0.1
    assert accuracy(plain, attack(bpda), y) <= 0.1
    # JPEG: no gradient at all, so plain PGD refuses to run; BPDA gets through
    with pytest.raises(AttackError):
        attack(defended(cnn, JpegCompression(75)))
    jpeg = defended(cnn, JpegCompression(75), bpda=True)
    assert accuracy(jpeg, attack(jpeg), y) <= 0.2


# --------------------------------------------------------------------------- feature squeezing


class Threshold(nn.Module):
    """Two logits ``[0, s (mean(x) - 0.3)]``: a bright image is class 1."""

    def __init__(self, s: float = 10.0) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.s * (x.flatten(1).mean(1) - 0.3)
        return torch.stack([torch.zeros_like(z), z], 1)


def test_feature_squeezing_score_closed_form():
    c = torch.tensor([0.0, 0.2, 0.4, 0.6, 1.0]).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
    det = FeatureSqueezingDetector(Threshold(), squeezers=(BitDepth(1), MedianSmoothing(2)))
    # constant images: the median changes nothing; 1 bit sends c to round(c). For two classes
    # the L1 distance of the softmaxes is 2 |sigmoid(z(c)) - sigmoid(z(round(c)))|
    v = c[:, 0, 0, 0]
    expected = 2 * (torch.sigmoid(10 * (v - 0.3)) - torch.sigmoid(10 * (torch.round(v) - 0.3)))
    assert torch.allclose(det.score(c), expected.abs(), atol=1e-6)
    assert det.score(c[0]).dim() == 0
    same = FeatureSqueezingDetector(Threshold(), squeezers=(lambda t: t,))
    assert torch.equal(same.score(c), torch.zeros(5))


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5, float("nan"), "a lot"])
def test_false_alarm_rate_outside_0_1_is_rejected(rate):
    det = FeatureSqueezingDetector(Threshold())
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        det.fit_threshold(torch.rand(4, 1, 4, 4), rate)


def test_detect_needs_a_threshold_and_squeezers():
    with pytest.raises(ConfigError, match="fit_threshold"):
        FeatureSqueezingDetector(Threshold()).detect(torch.rand(2, 1, 4, 4))
    with pytest.raises(ConfigError, match="squeezers"):
        FeatureSqueezingDetector(Threshold(), squeezers=())


def test_detector_false_alarms_at_the_requested_rate_and_catches_pgd(cnn, digits):
    x, y = digits
    fit, held = x[:200], x[200:]
    det = FeatureSqueezingDetector(cnn)
    det.fit_threshold(fit, false_alarm_rate=0.1)
    on_fit = float(det.detect(fit).float().mean())
    assert 0.1 - 1 / 200 - 1e-6 <= on_fit <= 0.1 + 1e-6  # the quantile, up to one image
    on_held = float(det.detect(held).float().mean())
    assert abs(on_held - 0.1) <= 0.07  # ~3.3 binomial SDs for n = 200
    xa, ya = x[200:248], y[200:248]
    x_pgd = pgd(cnn, xa, ya, 0.2, alpha=0.04, steps=8, generator=torch.Generator().manual_seed(0))
    fooled = cnn(x_pgd).argmax(1) != ya
    assert fooled.float().mean() >= 0.8
    assert det.detect(x_pgd)[fooled].float().mean() >= 0.6
    assert det.detect(fgsm(cnn, xa, ya, 0.2)).float().mean() >= 0.3
