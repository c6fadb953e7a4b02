"""Randomised smoothing against closed forms: on a linear two-class model ``[0, w.x + b]`` the
smoothed probability of class 1 is ``Phi((w.x + b) / (sigma ||w||))`` and the exact certified
radius is ``|w.x + b| / ||w||``."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binom, binomtest, norm

from advstudio.core.certify.smooth_attack import smooth_pgd, smoothed_log_prob
from advstudio.core.certify.smoothing import (
    ABSTAIN,
    Certificate,
    Smoothing,
    certified_accuracy,
    certify,
    certify_images,
    clopper_pearson_lower,
    largest_radius,
    predict,
    sample_counts,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, Progress, drive
from tests.core.helpers import Logistic

SHAPE = (1, 4, 4)


def linear_model(seed: int = 0, b: float = 0.0) -> tuple[Logistic, torch.Tensor]:
    w = torch.randn(math.prod(SHAPE), generator=torch.Generator().manual_seed(seed))
    return Logistic(w, b).eval(), w


def image_at(w: torch.Tensor, b: float, signed_distance: float) -> torch.Tensor:
    """A point at ``signed_distance`` (L2) from the boundary ``w.x + b = 0``, pixels near 0.5."""
    x = torch.full((math.prod(SHAPE),), 0.5)
    z = float(x @ w) + b
    return (x + (signed_distance - z / float(w.norm())) * w / w.norm()).view(SHAPE)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("k", "n", "alpha"),
    [
        (0, 10, 0.05),
        (1, 10, 0.05),
        (7, 10, 0.001),
        (10, 10, 0.01),
        (990, 1000, 0.001),
        (5000, 10000, 0.05),
    ],
)
def test_clopper_pearson_matches_scipy_exact_interval(k, n, alpha):
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(ci.low, abs=1e-12)


def test_noise_counts_match_the_closed_form_probability():
    model, w = linear_model()
    sigma, num = 0.5, 20000
    x = image_at(w, 0.0, 0.3)
    counts = sample_counts(model, x, num, sigma, batch_size=999, generator=gen(1))
    assert counts.tolist()[0] + counts.tolist()[1] == num
    p = norm.cdf(0.3 / sigma)
    assert abs(counts[1].item() / num - p) < 5 * math.sqrt(p * (1 - p) / num)


def test_certified_radius_is_sound_beyond_alpha_only():
    """Over 1,000 (point, seed) pairs, a certificate claiming more than the exact radius (or the
    wrong class) happens with probability <= alpha each: count the violations."""
    model, w = linear_model(b=0.1)
    smoothing = Smoothing(sigma=0.5, n0=10, n=100, alpha=0.05, batch_size=200)
    trials, violations, certified = 1000, 0, 0
    for t in range(trials):
        distance = 0.2 + 0.8 * (t % 20) / 20
        x = image_at(w, 0.1, distance if t % 2 else -distance)
        c = certify(model, x, smoothing, gen(t))
        truth = 1 if t % 2 else 0
        if not c.abstained:
            certified += 1
            violations += c.prediction != truth or c.radius > distance
    assert certified > trials // 2
    assert violations <= binom.ppf(1 - 1e-6, trials, smoothing.alpha)


def test_certified_radius_is_close_to_exact_at_large_n():
    model, w = linear_model()
    sigma = 0.25
    x = image_at(w, 0.0, sigma)  # exact p_A = Phi(1) = 0.84, exact radius sigma
    c = certify(
        model, x, Smoothing(sigma, n0=100, n=100_000, alpha=0.001, batch_size=25_000), gen(0)
    )
    assert c.prediction == 1
    assert 0.96 * sigma < c.radius <= sigma
    assert c.p_lower == pytest.approx(norm.cdf(1.0), abs=0.01)


def test_far_from_the_boundary_the_radius_is_the_largest_this_n_allows():
    model, w = linear_model()
    smoothing = Smoothing(0.25, n0=10, n=500, alpha=0.01, batch_size=256)
    c = certify(model, image_at(w, 0.0, 5.0), smoothing, gen(0))
    assert c.p_lower == pytest.approx(smoothing.alpha ** (1 / smoothing.n), abs=1e-12)
    assert c.radius == pytest.approx(largest_radius(smoothing), abs=1e-12)
    assert largest_radius(smoothing) == pytest.approx(0.25 * norm.ppf(0.01 ** (1 / 500)))


def test_certify_abstains_on_the_boundary():
    model, w = linear_model()
    x = image_at(w, 0.0, 0.0)
    smoothing = Smoothing(0.5, n0=10, n=200, alpha=0.01, batch_size=256)
    results = [certify(model, x, smoothing, gen(s)) for s in range(20)]
    assert all(c == Certificate(ABSTAIN, c.p_lower, 0.0) for c in results)
    assert all(c.p_lower <= 0.5 for c in results)


def test_predict_returns_the_class_far_away_and_abstains_on_the_boundary():
    model, w = linear_model()
    smoothing = Smoothing(0.5, n0=10, n=200, alpha=0.01, batch_size=256)
    assert predict(model, image_at(w, 0.0, -1.0), smoothing, gen(0)) == 0
    assert predict(model, image_at(w, 0.0, 1.0), smoothing, gen(0)) == 1
    on_boundary = [predict(model, image_at(w, 0.0, 0.0), smoothing, gen(s)) for s in range(50)]
    assert on_boundary.count(ABSTAIN) >= 50 - binom.ppf(1 - 1e-6, 50, smoothing.alpha)


def test_a_seed_gives_the_same_certificate():
    model, w = linear_model()
    x = image_at(w, 0.0, 0.2)
    smoothing = Smoothing(0.5, n0=10, n=300, alpha=0.01, batch_size=64)
    assert certify(model, x, smoothing, gen(3)) == certify(model, x, smoothing, gen(3))


def test_certify_images_is_a_job_with_a_progress_per_image():
    model, w = linear_model()
    x = torch.stack([image_at(w, 0.0, d) for d in (-0.5, 0.5, 1.0)])
    outcome = drive(
        certify_images(model, x, Smoothing(0.5, 10, 100, 0.01, 64), gen(0)), keep_events=True
    )
    progress = [e for e in outcome.events if isinstance(e, Progress)]
    metrics = [e for e in outcome.events if isinstance(e, Metrics)]
    assert [(p.done, p.total) for p in progress] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [m.values["radius"] for m in metrics] == [c.radius for c in outcome.result]
    assert [c.prediction for c in outcome.result] == [0, 1, 1]


def test_certified_accuracy_counts_right_classes_with_enough_radius():
    certificates = [
        Certificate(1, 0.9, 0.6),
        Certificate(ABSTAIN, 0.4, 0.0),
        Certificate(0, 0.8, 0.3),
        Certificate(2, 0.99, 1.0),
    ]
    labels = [1, 1, 0, 1]
    assert [certified_accuracy(labels, certificates, r) for r in (0.0, 0.3, 0.5, 1.0)] == [
        0.5,
        0.5,
        0.25,
        0.0,
    ]


@pytest.mark.parametrize(
    ("field", "value"), [("sigma", 0.0), ("n", 0), ("alpha", 0.5), ("batch_size", True)]
)
def test_smoothing_settings_are_checked(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        Smoothing(**{field: value})


def test_smoothed_log_prob_matches_a_one_dimensional_integral():
    model, w = linear_model()
    sigma = 0.5
    x = image_at(w, 0.0, 0.4).unsqueeze(0)
    log_p = smoothed_log_prob(model, x, torch.tensor([1]), sigma, 20000, gen(0))
    # G_1(x) = E[sigmoid(z)], z ~ N(w.x + b, sigma^2 ||w||^2): a separate 1-D Monte-Carlo mean
    z = 0.4 * float(w.norm()) + sigma * float(w.norm()) * torch.randn(200_000, generator=gen(1))
    assert log_p.exp().item() == pytest.approx(torch.sigmoid(z).mean().item(), abs=0.01)


def test_smooth_pgd_on_a_linear_model_steps_straight_across_the_boundary():
    """The Monte-Carlo gradient of -log G_1 is a positive multiple of -w, so the attack ends at
    x - eps w / ||w||: beyond the exact radius it flips the smoothed class, within it not."""
    model, w = linear_model()
    radius = 0.3
    x = torch.stack([image_at(w, 0.0, radius)] * 2)
    y = torch.tensor([1, 1])
    for eps in (0.2, 0.4):
        x_adv = smooth_pgd(
            model, x, y, eps, alpha=eps / 3, steps=6, sigma=0.25, samples=16, generator=gen(0)
        )
        expected = x - eps * (w / w.norm()).view(1, *SHAPE)
        assert torch.allclose(x_adv, expected, atol=1e-5)
        side = (x_adv.flatten(1) @ w > 0).tolist()
        assert side == [eps < radius] * 2
