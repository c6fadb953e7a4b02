"""Fréchet distance against closed forms; diversity, coverage, grids and interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advstudio.core.gan.metrics import (
    class_coverage,
    frechet_distance,
    gaussian_stats,
    pairwise_diversity,
)
from advstudio.core.gan.networks import build_networks
from advstudio.core.gan.sampling import generate, interpolate, sample_grid


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=16), _random_cov(rng, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8 * np.trace(sigma))


@pytest.mark.parametrize(
    ("m1", "s1", "m2", "s2"), [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.5), (3.0, 0.1, 3.0, 4.0)]
)
def test_frechet_1d_closed_form(m1, s1, m2, s2):
    # sigma is the variance; the distance is (m1 - m2)^2 + (std1 - std2)^2
    got = frechet_distance([m1], [[s1**2]], [m2], [[s2**2]])
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-10, abs=1e-12)


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_full_covariances_match_eigenvalues_of_product():
    # tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2 (real, >= 0)
    rng = np.random.default_rng(2)
    s1, s2 = _random_cov(rng, 12), _random_cov(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    eig = np.linalg.eigvals(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum()
    got = frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)  # symmetric
    # torch inputs give the same number
    t = [torch.as_tensor(a, dtype=torch.float64) for a in (mu1, s1, mu2, s2)]
    assert frechet_distance(*t) == pytest.approx(got, rel=1e-9)


def test_frechet_rank_deficient_and_bad_shapes():
    # dead (constant) features give singular covariances; the distance must stay finite
    sigma = np.diag([1.0, 0.0, 4.0])
    assert frechet_distance(np.zeros(3), sigma, np.ones(3), sigma) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_gaussian_stats_estimates_mean_and_covariance():
    rng = np.random.default_rng(3)
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = rng.multivariate_normal([1.0, -2.0], cov, size=20000)
    mu, sigma = gaussian_stats(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(mu, [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(sigma, cov, atol=0.06)
    # samples of the same Gaussian are close in Fréchet distance; a shifted one is not
    other = rng.multivariate_normal([1.0, -2.0], cov, size=20000)
    assert frechet_distance(mu, sigma, *gaussian_stats(other)) < 0.01
    assert frechet_distance(mu, sigma, *gaussian_stats(other + 3.0)) == pytest.approx(
        18.0, rel=0.02
    )


def test_pairwise_diversity():
    assert pairwise_diversity(torch.ones(5, 1, 4, 4)) == 0.0  # collapsed
    assert pairwise_diversity(torch.zeros(1, 3)) == 0.0
    pts = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])  # distances 5, 8, 5
    assert pairwise_diversity(pts) == pytest.approx(6.0)
    assert pairwise_diversity(pts.numpy()) == pytest.approx(6.0)


def test_class_coverage():
    assert class_coverage(torch.zeros(100, dtype=torch.long), num_classes=10) == (1, 0.0)
    balanced = torch.arange(10).repeat(100)
    covered, entropy = class_coverage(balanced)
    assert covered == 10 and entropy == pytest.approx(math.log(10))
    # 2 % threshold: a class with 1 % of the samples is not covered
    preds = torch.cat([torch.zeros(89), torch.ones(10), torch.full((1,), 2)]).long()
    assert class_coverage(preds, num_classes=10)[0] == 2
    assert class_coverage(preds, num_classes=10, threshold=0.01)[0] == 3
    # probabilities / logits: argmax is taken
    logits = torch.full((4, 3), -5.0)
    logits[[0, 1], 0] = 5.0
    logits[[2, 3], 2] = 5.0
    covered, entropy = class_coverage(logits)
    assert covered == 2 and entropy == pytest.approx(math.log(2))
    with pytest.raises(ValueError):
        class_coverage(torch.zeros(2, 2, 2))


def test_sample_grid_layout():
    imgs = torch.zeros(5, 1, 4, 4)
    for i in range(5):
        imgs[i] = (i + 1) / 10
    grid = sample_grid(imgs, nrow=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1) and grid.dtype == np.float32
    assert grid[1, 1] == pytest.approx(0.1) and grid[1 + 5, 1 + 5] == pytest.approx(0.5)
    assert grid[0, 0] == 0.0  # padding
    assert grid[6:, 11:].max() == 0.0  # the missing 6th tile stays padding
    rgb = sample_grid(torch.rand(64, 3, 28, 28) * 3 - 1)  # out of range values are clipped
    assert rgb.shape == (242, 242, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_interpolate_endpoints_range_and_mode():
    torch.manual_seed(0)
    g, _ = build_networks("dcgan", 8, 1, 28)
    g.train()
    z0, z1 = torch.randn(8), torch.randn(8)
    for spherical in (False, True):
        path = interpolate(g, z0, z1, n=5, spherical=spherical)
        assert path.shape == (5, 1, 28, 28)
        assert path.min() >= 0.0 and path.max() <= 1.0
        ends = generate(g, torch.stack([z0, z1]))
        torch.testing.assert_close(path[[0, -1]], ends, atol=1e-5, rtol=0)
    assert g.training  # mode restored
    with pytest.raises(ValueError):
        interpolate(g, z0, z1, n=1)
