"""Perturbation measures against hand computations, attack reports, minimal epsilon."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advstudio.core.attacks import (
    attack_report,
    fgsm,
    l0,
    l2,
    linf,
    minimal_epsilon,
    minimal_epsilons,
    pgd,
    psnr,
    ssim,
)
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import ConfigError


def test_norms_and_psnr_by_hand():
    x = torch.zeros(2, 1, 4, 4)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.5
    x_adv[0, 0, 3, 2] = 0.25
    x_adv[0, 0, 1, 1] = 1e-7  # round-off, below the L0 tolerance
    assert linf(x, x_adv).tolist() == pytest.approx([0.5, 0.0])
    assert l2(x, x_adv)[0].item() == pytest.approx(math.sqrt(0.25 + 0.0625), abs=1e-6)
    assert l0(x, x_adv).tolist() == [2.0, 0.0]
    assert psnr(x, x_adv)[0].item() == pytest.approx(10 * math.log10(16 / 0.3125), abs=1e-4)
    assert math.isinf(psnr(x, x_adv)[1].item())
    one = linf(x[0], x_adv[0])  # a single (C, H, W) image
    assert one.shape == (1,) and one.item() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="shape"):
        linf(x, x_adv[:1])


def test_l0_counts_each_channel_value():
    x = torch.zeros(1, 3, 2, 2)
    x_adv = x.clone()
    x_adv[0, :, 0, 0] = 0.1  # one pixel, three channel values
    assert l0(x, x_adv).item() == 3


def test_ssim_of_identical_images_is_one():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=gen)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)


def test_ssim_of_constant_images_closed_form():
    # no variance, no covariance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly
    a, b = 0.2, 0.7
    c1 = 0.01**2
    got = ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)).item()
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s formula written out window by window (valid positions), one channel."""
    size, sigma = 11, 1.5
    g = np.exp(-((np.arange(size) - 5.0) ** 2) / (2 * sigma**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(
                (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def test_ssim_matches_a_window_by_window_computation():
    rng = np.random.default_rng(0)
    x = rng.random((2, 13, 14))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    expected = np.mean([_ssim_reference(x[c], y[c]) for c in range(2)])  # channel average
    got = ssim(torch.from_numpy(x)[None].float(), torch.from_numpy(y)[None].float()).item()
    assert got == pytest.approx(expected, abs=1e-5)
    assert 0 < got < 0.9


def test_ssim_agrees_with_scikit_image_where_installed():
    metrics = pytest.importorskip("skimage.metrics")  # not a dependency; checked where present
    rng = np.random.default_rng(2)
    a = rng.random((3, 30, 26))
    b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1)
    ref = metrics.structural_similarity(
        a,
        b,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=0,
    )
    got = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None]).item()
    assert got == pytest.approx(ref, abs=1e-6)


def test_ssim_falls_with_noise_and_is_symmetric():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 28, 28, generator=gen)
    noise = torch.randn(1, 1, 28, 28, generator=gen)
    values = [ssim(x, (x + s * noise).clamp(0, 1)).item() for s in (0.01, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]
    y = (x + 0.1 * noise).clamp(0, 1)
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-6)


def test_attack_report_rows(cnn):
    x, y = sweep_images(16, seed=0)
    x_adv = fgsm(cnn, x, y, 0.2)
    rows = attack_report(cnn, x, x_adv, y)
    with torch.no_grad():
        p_clean, p_adv = torch.softmax(cnn(x), 1), torch.softmax(cnn(x_adv), 1)
    assert len(rows) == 16
    for i, r in enumerate(rows):
        assert r.label == int(y[i]) and r.target is None
        assert r.pred_before == int(p_clean[i].argmax())
        assert r.conf_before == pytest.approx(float(p_clean[i].max()), abs=1e-6)
        assert r.pred_after == int(p_adv[i].argmax())
        assert r.success == (r.pred_after != r.label)
        assert r.linf <= 0.2 + 1e-6 and r.l0 > 0 and r.psnr > 0 and -1 <= r.ssim < 1
    assert any(r.success for r in rows)

    target = (y + 1) % 10
    t_adv = pgd(cnn, x, target, 0.25, alpha=0.05, steps=5, targeted=True)
    t_rows = attack_report(cnn, x, t_adv, y, target=target)
    assert all(r.success == (r.pred_after == r.target) for r in t_rows)
    assert any(r.success for r in t_rows)
    same = attack_report(cnn, x[:2], x[:2], y[:2])
    assert all(not r.success or r.pred_before != r.label for r in same)
    assert all(r.l0 == 0 and math.isinf(r.psnr) and r.ssim == pytest.approx(1) for r in same)


class _Logistic(nn.Module):
    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def test_minimal_epsilon_closed_form():
    # x = 0.5 everywhere, label 1; FGSM moves every pixel by -eps sign(w) (no clipping below
    # eps 0.5), so z(eps) = z0 - eps ||w||_1 and the class flips at eps* = z0 / ||w||_1
    w = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5, -1.0, 2.0, 0.0, -0.5])
    x = torch.full((1, 1, 3, 3), 0.5)
    z0 = 0.3 * w.abs().sum().item()
    model = _Logistic(w, z0 - 0.5 * w.sum().item())
    got = minimal_epsilon(model, x, 1, tol=1e-4)
    assert got == pytest.approx(0.3, abs=1e-4) and got >= 0.3 - 1e-6
    assert minimal_epsilon(model, x, 0) == 0.0  # already "misclassified"
    flat = _Logistic(torch.zeros(9), 1.0)  # no gradient to follow
    assert minimal_epsilon(flat, x, 1) is None


def test_minimal_epsilons_on_the_cnn(cnn):
    x, y = sweep_images(12, seed=0)
    eps = minimal_epsilons(cnn, x, y, tol=1e-3)
    assert len(eps) == 12
    print("\nminimal FGSM eps of 12 digits:", [None if e is None else round(e, 3) for e in eps])
    assert sum(e is not None for e in eps) >= 8
    for i, e in enumerate(eps):
        probes = [e, e - 1e-3] if e is not None else [k / 32 for k in range(1, 33)]
        with torch.no_grad():
            preds = [
                cnn(fgsm(cnn, x[i : i + 1], y[i : i + 1], max(p, 0.0))).argmax(1).item()
                for p in probes
            ]
        if e is None:  # no eps up to 1 works
            assert all(p == int(y[i]) for p in preds)
        elif e > 0:  # flips at e, not just below
            assert preds[0] != int(y[i]) and preds[1] == int(y[i])
    one = minimal_epsilon(cnn, x[3], int(y[3]), tol=1e-3)
    assert one == eps[3]
    with pytest.raises(ConfigError, match="one image"):
        minimal_epsilon(cnn, x[:2], y[:2])


def test_minimal_epsilon_with_another_attack(cnn):
    x, y = sweep_images(2, seed=1)
    eps = minimal_epsilons(
        cnn, x, y, tol=0.01, grid=8, attack=pgd, alpha=0.1, steps=5, random_start=False
    )
    assert all(e is not None and 0 < e <= 1 for e in eps)
    for i, e in enumerate(eps):
        with torch.no_grad():
            adv = pgd(cnn, x[i : i + 1], y[i : i + 1], e, alpha=0.1, steps=5, random_start=False)
            assert cnn(adv).argmax(1).item() != int(y[i])
