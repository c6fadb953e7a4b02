"""Does an adversarial image survive saving: PNG/JPEG re-checks and the quantisation-aware fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advstudio.core.attacks.quantise import (
    jpeg_roundtrip,
    quantisation_aware,
    quantise_8bit,
    quantise_adversarial,
    survival,
)
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.attacks.transforms import JpegCompression
from advstudio.core.attacks.whitebox import fgsm, pgd
from advstudio.core.errors import ConfigError
from advstudio.core.images import pixels_to_uint8
from advstudio.core.models.registry import load_builtin


class Linear2(nn.Module):
    """Two logits ``[0, w.x - c]``: class 1 iff ``w.x > c``. Pixels and ``c`` in grey levels/255."""

    def __init__(self, w: list[float], c: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.c = c / 255

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) @ self.w - self.c) * 100
        return torch.stack([torch.zeros_like(z), z], 1)


def _img(*levels: float) -> torch.Tensor:
    return torch.tensor(levels, dtype=torch.float64).div(255).float().view(1, 1, 1, -1)


def _on_grid(x: torch.Tensor) -> bool:
    return bool(torch.allclose(x * 255, torch.round(x * 255), atol=1e-4))


# --------------------------------------------------------------------------- saving


def test_quantise_8bit_is_what_a_png_stores():
    x = _img(0.2, 0.6, 100.5, 101.5, 254.4, 255)
    assert torch.equal(quantise_8bit(x), _img(0, 1, 100, 102, 254, 255))  # ties to even
    rand = torch.rand(3, 3, 7, 5, generator=torch.Generator().manual_seed(0))
    png = pixels_to_uint8(rand.numpy()).astype(np.float32) / 255
    np.testing.assert_array_equal(quantise_8bit(rand).numpy(), png)
    assert torch.equal(quantise_8bit(quantise_8bit(rand)), quantise_8bit(rand))


def test_jpeg_roundtrip_matches_the_transform_and_keeps_shape():
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = jpeg_roundtrip(x, 90)
    assert out.shape == x.shape and _on_grid(out)
    assert torch.equal(out, JpegCompression(90)(x[None])[0])
    with pytest.raises(ConfigError, match="from 1 to 100"):
        jpeg_roundtrip(x, 0)


# --------------------------------------------------------------------------- survival

# one pixel, class 1 iff x > 100.6 grey levels; clean 102 (class 1)
BOUNDARY = Linear2([1.0], 100.6)


def test_survival_flags_an_example_that_flips_back_when_saved():
    # 100.55 is just across the boundary, but PNG rounds it to 101: class 1 again. 100.3
    # rounds to 100 and stays adversarial.
    x_adv = torch.cat([_img(100.55), _img(100.3), _img(103.0)])
    report = survival(BOUNDARY, x_adv, [1, 1, 1], jpeg_quality=95)
    assert report.adv_float.tolist() == [True, True, False]
    assert report.adv_png.tolist() == [False, True, False]
    assert report.pred_png.tolist() == [1, 0, 1] and report.pred_float.tolist() == [0, 0, 1]
    assert report.adv_jpeg is not None and report.jpeg_quality == 95
    rates = report.rates()
    assert rates["adversarial"] == pytest.approx(2 / 3) and rates["survive_png"] == 0.5
    assert set(rates) == {"adversarial", "survive_png", "survive_jpeg"}
    assert survival(BOUNDARY, x_adv, 1).adv_jpeg is None


def test_survival_targeted_means_reaching_the_target():
    x_adv = torch.cat([_img(100.55), _img(100.3)])
    report = survival(BOUNDARY, x_adv, None, targeted=True, target=0)
    assert report.adv_float.tolist() == [True, True] and report.adv_png.tolist() == [False, True]
    with pytest.raises(ConfigError, match="target"):
        survival(BOUNDARY, x_adv, [1, 1], targeted=True)
    with pytest.raises(ConfigError, match="targeted=True"):
        survival(BOUNDARY, x_adv, [1, 1], target=0)
    with pytest.raises(ConfigError, match="out of range"):
        survival(BOUNDARY, x_adv, [1, 2])


# --------------------------------------------------------------------------- quantisation-aware


def test_rounding_toward_the_perturbation_repairs_the_flip_back():
    x, x_adv = _img(102), _img(100.55)
    res = quantise_adversarial(BOUNDARY, x, x_adv, 1, eps=2 / 255)
    assert res.fooled_float.tolist() == [True] and res.fooled.tolist() == [True]
    assert res.method == ["toward perturbation"] and res.repaired.tolist() == [True]
    assert torch.equal(res.x_q, _img(100))  # floor, not round
    assert res.linf.tolist() == pytest.approx([2 / 255]) and res.within_eps.tolist() == [True]
    assert survival(BOUNDARY, res.x_q, 1).adv_png.tolist() == [True]
    # already robust to rounding: nearest is kept
    res = quantise_adversarial(BOUNDARY, x, _img(100.3), 1, eps=2 / 255)
    assert res.method == ["nearest"] and torch.equal(res.x_q, _img(100))


def test_a_gradient_step_on_the_grid_repairs_what_rounding_cannot():
    # class 1 iff x0 + x1 > 202.9; clean (102, 102). The attack moved x1 the wrong way (up):
    # nearest (101, 102) and toward-perturbation (100, 103) both sum to 203 > 202.9; one
    # gradient step of one grey level down on both gives (99, 102): adversarial, within eps
    model = Linear2([1.0, 1.0], 202.9)
    x, x_adv = _img(102, 102), _img(100.6, 102.2)
    res = quantise_adversarial(model, x, x_adv, 1, eps=3 / 255)
    assert res.fooled_float.tolist() == [True] and res.fooled.tolist() == [True]
    assert res.method == ["gradient step 1"]
    assert torch.equal(res.x_q, _img(99, 102))
    # without gradient steps it cannot, and says so
    res = quantise_adversarial(model, x, x_adv, 1, eps=3 / 255, steps=0)
    assert res.method == ["failed"] and res.fooled.tolist() == [False]
    assert torch.equal(res.x_q, _img(101, 102))  # the nearest rounding


def test_reports_when_no_grid_point_in_the_ball_fools_the_model():
    # eps = 1.5 grey levels is not on the grid: the ball around 102 holds 101..103 only, all
    # on the clean side of 100.6, although the float 100.55 (1.45 away) fools the model
    res = quantise_adversarial(BOUNDARY, _img(102), _img(100.55), 1, eps=1.5 / 255)
    assert res.fooled_float.tolist() == [True] and res.fooled.tolist() == [False]
    assert res.method == ["failed"] and res.within_eps.tolist() == [True]
    assert torch.equal(res.x_q, _img(101))


def test_budget_guarantee_on_and_off_the_grid():
    gen = torch.Generator().manual_seed(0)
    model = Linear2(torch.randn(48, generator=gen).tolist(), 0.0)
    x = torch.randint(0, 256, (8, 3, 4, 4), generator=gen).float() / 255  # on the grid
    for eps in (8 / 255, 0.1, 0.013):
        x_adv = (x + (2 * torch.rand(x.shape, generator=gen) - 1) * eps).clamp(0, 1)
        res = quantise_adversarial(model, x, x_adv, 1, eps=eps)
        assert _on_grid(res.x_q) and res.x_q.min() >= 0 and res.x_q.max() <= 1
        assert float((res.x_q - x).abs().max()) <= eps + 1e-6
        assert res.within_eps.all()
    # x off the grid and eps < 1/510: no grid value in the ball; the nearest one to x, and
    # reported as outside the budget
    off, eps = _img(100.3, 50.0), 0.1 / 255
    res = quantise_adversarial(Linear2([1.0, 0.0], 0.0), off, off, 1, eps=eps, steps=0)
    assert torch.equal(res.x_q, _img(100, 50)) and res.method == ["not adversarial"]
    assert res.within_eps.tolist() == [False]
    assert res.linf.tolist() == pytest.approx([0.3 / 255], abs=1e-7)


def test_validation():
    with pytest.raises(ConfigError, match="steps"):
        quantise_adversarial(BOUNDARY, _img(102), _img(101), 1, eps=0.1, steps=-1)
    with pytest.raises(ConfigError, match="differ in shape"):
        quantise_adversarial(BOUNDARY, _img(102), _img(101, 101), 1, eps=0.1)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        quantise_adversarial(BOUNDARY, _img(102), _img(101), 1, eps=2.0)


def test_targeted_quantisation_aware_wrapper_on_the_linear_case():
    model = Linear2([1.0, 1.0], 202.9)
    x = _img(102, 102)
    attack = quantisation_aware(fgsm)
    x_q = attack(model, x, 0, 0.6 / 255, targeted=True)  # FGSM: (101.4, 101.4) floats
    assert _on_grid(x_q) and float((x_q - x).abs().max()) <= 0.6 / 255 + 1e-6
    # eps 0.6 grey levels allows no grid move: the result is x itself (reported by
    # quantise_adversarial as failed); with eps one level it reaches the target
    assert torch.equal(x_q, x)
    x_q = attack(model, x, 0, 1 / 255, targeted=True)
    assert model(x_q).argmax(1).tolist() == [0] and torch.equal(x_q, _img(101, 101))


def test_quantisation_aware_pgd_on_the_cnn_survives_png():
    cnn = load_builtin("digits-cnn")
    x, y = sweep_images(32, seed=1)
    eps = 0.15  # 38.25 grey levels: off grid
    x_adv = pgd(cnn, x, y, eps, alpha=0.02, steps=8, generator=torch.Generator().manual_seed(0))
    res = quantise_adversarial(cnn, x, x_adv, y, eps)
    assert _on_grid(res.x_q) and float((res.x_q - x).abs().max()) <= eps + 1e-6
    assert torch.equal(quantise_8bit(res.x_q), res.x_q)  # PNG leaves it unchanged
    assert res.fooled_float.float().mean() >= 0.5
    assert res.fooled[res.fooled_float].all()  # every success kept
    # images the attack did not fool are rounded, not attacked further
    assert all(
        m in ("nearest", "not adversarial")
        for m, f in zip(res.method, res.fooled_float.tolist())
        if not f
    )
    after = survival(cnn, res.x_q, y)
    assert torch.equal(after.adv_float, res.fooled) and torch.equal(after.adv_png, res.fooled)
    wrapped = quantisation_aware(pgd)(
        cnn, x, y, eps, alpha=0.02, steps=8, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(wrapped, res.x_q)
