"""The Attack tab's jobs without Qt: the new attacks in AttackSpec / attack_image, survival after
saving, quantisation-aware results, the defence comparison, the detector check and the
distance to the boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advstudio.core.attacks.lab import (
    AttackSpec,
    attack_image,
    check_survival,
    compare_defence,
    detector_check,
    distance_to_boundary,
    fgsm_at,
    make_transform,
    measure,
    quantise_budget,
)
from advstudio.core.attacks.metrics import l2
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.attacks.transforms import FeatureSqueezingDetector
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Progress, drive


@pytest.fixture(scope="module")
def digit(cnn):
    """A test digit the CNN classifies right: (1, 1, 28, 28) on the 1/255 grid, its label."""
    x, y = sweep_images(20, seed=3)
    right = (cnn(x).argmax(1) == y).nonzero()[0, 0]
    return x[right : right + 1], int(y[right])


def _run(job):
    return drive(job).result


def _png(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.rint(x.clamp(0, 1).numpy() * 255).astype(np.float32) / 255)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"jpeg_quality": 101}, "from 1 to 100"),
        ({"jpeg_quality": -1}, "from 1 to 100"),
        ({"jpeg_quality": True}, "from 1 to 100"),
        ({"attack": "deepfool", "targeted": True, "target": 3}, "DeepFool is untargeted"),
        ({"attack": "apgd", "loss": "hinge"}, "ce, dlr"),
        ({"attack": "cw", "c": 0}, "c .*> 0"),
        ({"attack": "cw", "kappa": -1}, "kappa .*>= 0"),
        ({"attack": "apgd", "access": "transfer"}, "allowed: fgsm, bim, pgd, mifgsm$"),
    ],
)
def test_spec_explains_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AttackSpec(**kwargs)


def test_minimal_attacks_ignore_eps_and_report_what_they_needed(cnn, digit):
    x, y = digit
    for spec in (
        AttackSpec(attack="deepfool", eps=0.0, steps=50),
        AttackSpec(attack="cw", eps=0.0, steps=30, search_steps=3),
    ):
        out = _run(attack_image(cnn, x, spec))
        assert spec.minimal and out.report.success
        assert out.report.l2 == pytest.approx(float(l2(x, out.x_adv)[0]), rel=1e-5)
        assert out.report.linf > 0  # eps 0 did not hold them back


def test_survival_matches_rounding_and_jpeg_by_hand(cnn, digit):
    x, y = digit
    out = _run(attack_image(cnn, x, AttackSpec(attack="deepfool", jpeg_quality=60)))
    s = out.survival
    assert s.jpeg_quality == 60
    assert bool(s.adv_png[0]) == (int(cnn(_png(out.x_adv)).argmax(1)) != y)
    again = check_survival(cnn, out, 0)
    assert again.spec.jpeg_quality == 0 and again.survival.adv_jpeg is None
    assert torch.equal(again.x_adv, out.x_adv) and again.report == out.report


def test_quantisation_aware_results_lie_on_the_grid_within_the_ball(cnn, digit):
    x, y = digit
    # measured on this digit: PGD at eps 0.1 and SimBA in 300 queries do not fool the CNN
    for spec, fools in (
        (AttackSpec(attack="pgd", eps=0.1, steps=10, quantise=True), False),
        (AttackSpec(attack="deepfool", quantise=True), True),
        (
            AttackSpec(access="query", attack="simba", eps=0.2, max_queries=300, quantise=True),
            False,
        ),
    ):
        out = _run(attack_image(cnn, x, spec))
        levels = out.x_adv * 255
        assert torch.allclose(levels, levels.round(), atol=1e-3), spec.attack
        budget = quantise_budget(spec, x, out.x_adv)
        assert (out.x_adv - x).abs().max() <= budget + 1e-6
        assert out.report.success is fools, spec.attack
        assert out.quantise_method == ("nearest" if fools else "not adversarial"), spec.attack
        # what is measured is what is saved: the 8-bit PNG fools exactly when the result does
        assert bool(out.survival.adv_png[0]) is fools, spec.attack


def test_quantise_budget_rounds_the_minimal_attacks_up_to_a_grey_level():
    x = torch.zeros(1, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 10.2 / 255
    assert quantise_budget(AttackSpec(attack="cw"), x, x_adv) == pytest.approx(11 / 255)
    assert quantise_budget(AttackSpec(eps=0.3), x, x_adv) == 0.3


def test_fgsm_at_keeps_quantising(cnn, digit):
    x, _ = digit
    first = _run(attack_image(cnn, x, AttackSpec(eps=0.05, quantise=True)))
    moved = fgsm_at(cnn, first, 0.123)
    assert moved.spec.eps == 0.123 and moved.quantise_method is not None
    levels = moved.x_adv * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)


def test_measure_builds_an_outcome_from_any_image(cnn, digit):
    x, y = digit
    out = measure(cnn, x, x, AttackSpec(), y)
    assert not out.report.success and not bool(out.survival.adv_float[0])
    assert out.report.l2 == 0


def test_defence_comparison_masks_gradients_and_bpda_undoes_it(cnn, digit):
    x, y = digit
    outcome = drive(
        compare_defence(cnn, x, defence="bit_depth", parameter=2, eps=0.3, steps=10, label=y),
        keep_events=True,
    )
    result = outcome.result
    assert [e.done for e in outcome.events if isinstance(e, Progress)] == [0, 1, 2]
    assert result.label == y and result.clean.indices[0] == y
    assert result.plain.success is False and result.bpda.success is True
    jpeg = _run(compare_defence(cnn, x, defence="jpeg", parameter=75, eps=0.3, steps=5))
    assert jpeg.plain.error and jpeg.plain.x_adv is None and jpeg.bpda.x_adv is not None
    # median of window 1 is the identity: masking-free, so plain PGD and BPDA agree exactly
    same = _run(compare_defence(cnn, x, defence="median", parameter=1, eps=0.2, steps=5))
    assert torch.equal(same.plain.x_adv, same.bpda.x_adv)
    none = _run(compare_defence(cnn, x, defence="none", parameter=0, eps=0.2, steps=5))
    assert none.bpda is None and none.plain.x_adv is not None


def test_make_transform_names_the_allowed_values():
    with pytest.raises(ConfigError, match="none, jpeg, bit_depth, median"):
        make_transform("blur", 3)
    with pytest.raises(ConfigError, match="from 1 to 100"):
        make_transform("jpeg", 0)
    with pytest.raises(ConfigError, match="from 1 to 8"):
        make_transform("bit_depth", 9)
    assert make_transform("none", 0) is None


def test_detector_check_uses_the_core_threshold(cnn, digit):
    x, _ = digit
    clean = sweep_images(200, seed=0)[0]
    x_adv = (x + 0.3 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    check = _run(detector_check(cnn, x, x_adv, 0.1, clean))
    detector = FeatureSqueezingDetector(cnn)
    assert check.threshold == pytest.approx(detector.fit_threshold(clean, 0.1))
    assert check.score_adversarial == pytest.approx(float(detector.score(x_adv)), abs=1e-6)
    assert check.detected_adversarial == (check.score_adversarial > check.threshold)
    assert check.n_clean == 200
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        _run(detector_check(cnn, x, None, 0.0, clean))


def test_distance_to_boundary_rows_match_their_images(cnn, digit):
    x, y = digit
    outcome = drive(
        distance_to_boundary(cnn, x, y, cw_steps=20, cw_search_steps=2), keep_events=True
    )
    rows = outcome.result
    assert [e.done for e in outcome.events if isinstance(e, Progress)] == [0, 1, 2, 3]
    assert [r.method for r in rows] == ["fgsm", "deepfool", "cw"]
    assert [r.success for r in rows] == [True, True, True]  # each method flips this digit
    for r in rows:
        assert r.l2 == pytest.approx(float(l2(x, r.x_adv)[0]), rel=1e-5)
        assert r.pred_after == int(cnn(r.x_adv).argmax(1)) != y
