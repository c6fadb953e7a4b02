"""Smooth PGD's smallest perturbation against a closed form: a linear two-class classifier is
its own smoothed classifier (Gaussian noise is symmetric), so its distance to the boundary is
``|w . x + b| / ||w||`` exactly; the certified radius lies below it and the found one above."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.certify.bounds import SmoothAttack, empirical_accuracy, smooth_pgd_l2
from advstudio.core.certify.job import SmoothingConfig, certify_model
from advstudio.core.certify.smoothing import Smoothing, certify, certify_images
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import drive

DISTANCE = 0.6  # of x = 0.5 everywhere to the boundary of the model below


class Linear2(nn.Module):
    """Logits ``(0, w . x + b)`` on 1x2x2 images, ``w = (1/2, 1/2, 1/2, 1/2)`` (unit norm) and
    ``b = -0.4``: at x = 0.5 everywhere the score is 0.6, class 1, at L2 distance 0.6."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((4,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w - 0.4
        return torch.stack([torch.zeros_like(score), score], 1)


def test_the_found_perturbation_and_the_certificate_bracket_the_true_distance():
    model, x, y = Linear2(), torch.full((1, 1, 2, 2), 0.5), torch.tensor([1])
    smoothing = Smoothing(sigma=0.25, n0=100, n=1000, alpha=0.001)
    g = torch.Generator().manual_seed(0)
    radius = certify(model, x[0], smoothing, g).radius
    attack = SmoothAttack(radii=(0.25, 0.5, 1.0, 1.5), steps=10, samples=16)
    found = drive(smooth_pgd_l2(model, x, y, smoothing, attack, g, [False])).result
    assert 0 < radius < DISTANCE < found[0] <= 1.0 + 1e-6


def test_an_image_the_smoothed_classifier_gets_wrong_is_not_attacked():
    model, x = Linear2(), torch.full((2, 1, 2, 2), 0.5)
    attack = SmoothAttack(radii=(0.25,), steps=2, samples=2)
    found = drive(
        smooth_pgd_l2(
            model,
            x,
            torch.tensor([1, 1]),
            Smoothing(),
            attack,
            torch.Generator().manual_seed(0),
            [True, False],
        )
    ).result
    assert found == [0.0, None]  # 0.25 < 0.6: no flip on the right one


def test_empirical_accuracy_counts_abstentions_and_small_flips_as_wrong():
    labels, predictions = [0, 1, 2, 3], [0, 1, -1, 3]
    found = [None, 0.4, 0.0, 1.2]
    assert empirical_accuracy(labels, predictions, found, 0.0) == 3 / 4
    assert empirical_accuracy(labels, predictions, found, 0.5) == 2 / 4
    assert empirical_accuracy(labels, predictions, found, 1.5) == 1 / 4


@pytest.mark.parametrize("radii", [(), (0.5, 0.25), (0.0,)])
def test_smooth_pgd_radii_are_checked(radii):
    with pytest.raises(ConfigError, match="smooth_pgd_radii"):
        SmoothingConfig(smooth_pgd_radii=radii)


def test_certify_model_gives_certify_images_certificates_for_the_config_seed():
    model, x, y = Linear2(), torch.rand(3, 1, 2, 2), torch.tensor([1, 1, 0])
    config = SmoothingConfig(
        n0=10,
        n=100,
        sigma=0.5,
        seed=7,
        cw_steps=2,
        smooth_pgd=True,
        smooth_pgd_radii=(0.25,),
        smooth_pgd_steps=2,
        smooth_pgd_samples=2,
    )
    result = drive(certify_model(model, x, y, config)).result
    expected = drive(
        certify_images(model, x, config.smoothing(), torch.Generator().manual_seed(7))
    ).result
    assert [(im.prediction, im.p_lower, im.radius) for im in result.images] == [
        (c.prediction, c.p_lower, c.radius) for c in expected
    ]
    assert result.smooth_pgd_radii == [0.25]
    assert result.empirical_accuracy == [
        empirical_accuracy(
            y.tolist(),
            [c.prediction for c in expected],
            [im.smooth_pgd_l2 for im in result.images],
            0.25,
        )
    ]


def test_certified_curve_and_its_csv_count_from_the_per_image_radii(tmp_path):
    import csv

    from advstudio.core.certify.job import (
        SmoothedImage,
        SmoothingResult,
        certified_curve,
        curves_to_csv,
    )

    images = [
        SmoothedImage(0, 1, 1, 1, 0.9, 0.8, 1.0, 1.0, 1.2),
        SmoothedImage(1, 2, 2, -1, 0.4, 0.0, 0.5, 0.6, 0.0),
        SmoothedImage(2, 3, 3, 3, 0.7, 0.3, 0.4, 0.5, None),
        SmoothedImage(3, 4, 5, 5, 0.99, 1.0, 0.0, 0.0, 0.0),
    ]
    result = SmoothingResult(
        "m",
        0.25,
        10,
        100,
        0.001,
        [0.0],
        [0.5],
        0.6,
        0.5,
        0.25,
        images,
        [0.5],
        [empirical_accuracy([1, 2, 3, 4], [1, -1, 3, 5], [1.2, 0.0, None, 0.0], 0.5)],
    )
    assert certified_curve(result, [0.0, 0.3, 0.5, 0.8, 0.81]) == [0.5, 0.5, 0.25, 0.25, 0.0]
    assert result.empirical_accuracy == [0.5]
    rows = list(csv.DictReader(curves_to_csv(result, [0.0, 1.0], tmp_path / "c.csv").open()))
    assert [(r["radius"], r["certified_accuracy"], r["empirical_accuracy"]) for r in rows] == [
        ("0", "0.5", ""),
        ("0.5", "0.25", "0.5"),
        ("1", "0", ""),
    ]


def test_without_base_attacks_the_base_predictions_remain_and_the_sizes_are_none():
    model, x = Linear2(), torch.full((2, 1, 2, 2), 0.5)
    config = SmoothingConfig(n0=10, n=100, base_attacks=False)
    result = drive(certify_model(model, x, torch.tensor([1, 0]), config)).result
    assert [im.base_prediction for im in result.images] == [1, 1]
    assert {(im.deepfool_l2, im.cw_l2) for im in result.images} == {(None, None)}
    assert result.base_accuracy == 0.5
