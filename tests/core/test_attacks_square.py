"""Square Attack: only scores are used, every query is counted, the ball holds, the schedule is
the paper's, and it breaks a linear model where the closed form says it can."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.blackbox import as_predict
from advstudio.core.attacks.square import HALVINGS, square_fraction, square_l2, square_linf
from advstudio.core.errors import ConfigError
from tests.core.linear import ScoresOnly, affine, boundary


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_schedule_halves_p_at_the_papers_iterations_rescaled_to_the_budget():
    assert square_fraction(0.8, 0, 10_000) == 0.8
    for k, h in enumerate(HALVINGS):
        assert square_fraction(0.8, h, 10_000) == pytest.approx(0.8 / 2**k)
        assert square_fraction(0.8, h + 1, 10_000) == pytest.approx(0.8 / 2 ** (k + 1))
    # a 1,000-query budget passes the same points ten times sooner
    assert square_fraction(0.8, 2, 1000) == pytest.approx(0.4)
    assert square_fraction(0.8, 999, 1000) == pytest.approx(0.8 / 2**9)


@pytest.mark.parametrize("attack, eps", [(square_linf, 0.3), (square_l2, 1.0)])
def test_only_scores_are_used_and_every_query_is_counted(attack, eps):
    model, x, y = affine(n=6)
    spy = ScoresOnly(model)
    res = attack(as_predict(spy), x, y, eps, max_queries=60, generator=_gen())
    assert spy.images == int(res.queries.sum())
    assert int(res.queries.max()) <= 60 and int(res.queries.min()) >= 1
    assert all(p.grad is None for p in model.parameters())
    # an image stops querying once fooled; one not fooled spent the whole budget
    assert bool((res.queries[~res.success] == 60).all())


def test_linf_stays_in_the_ball_and_starts_from_vertical_stripes():
    model, x, y = affine(n=3)
    eps = 0.05
    start = square_linf(as_predict(model), x, y, eps, max_queries=2, generator=_gen())
    delta = start.x_adv - x
    assert torch.allclose(delta.abs(), torch.full_like(delta, eps), atol=1e-6)
    assert bool((delta == delta[:, :, :1, :]).all())  # constant down each column
    res = square_linf(as_predict(model), x, y, eps, max_queries=200, generator=_gen())
    assert float((res.x_adv - x).abs().max()) <= eps + 1e-6
    assert 0 <= float(res.x_adv.min()) and float(res.x_adv.max()) <= 1


def test_l2_keeps_the_norm_at_eps():
    model, x, y = affine(n=3)
    res = square_l2(as_predict(model), x, y, 0.5, max_queries=100, generator=_gen())
    norms = (res.x_adv - x).flatten(1).norm(dim=1)
    assert bool((norms <= 0.5 + 1e-5).all())
    assert bool((norms[~res.success] >= 0.5 - 1e-4).all())  # interior images: no clipping


@pytest.mark.parametrize(
    "attack, closed_form, slack",
    [
        (square_linf, lambda gap, dw: gap / dw.abs().sum(1), 1.5),
        (square_l2, lambda gap, dw: gap / dw.norm(dim=1), 2.0),
    ],
)
def test_breaks_a_linear_model_when_eps_exceeds_the_minimal_perturbation(
    attack, closed_form, slack
):
    model, x, y = affine(classes=2, n=4)
    gap, dw = boundary(model, x, y, 1 - y)
    eps = float(closed_form(gap, dw).max()) * slack
    res = attack(as_predict(model), x, y, eps, max_queries=1000, generator=_gen())
    assert bool(res.success.all())
    with torch.no_grad():
        assert bool((model(res.x_adv).argmax(1) != y).all())
    # and never below the closed form: no perturbation smaller than the minimal one flips it
    short = closed_form(gap, dw) * 0.9
    fails = attack(as_predict(model), x, y, float(short.min()), max_queries=200, generator=_gen())
    assert not bool(fails.success.any())


def test_targeted_reaches_the_target_and_runs_are_reproducible():
    model, x, y = affine(classes=3, n=4)
    target = (y + 1) % 3
    a = square_linf(
        as_predict(model), x, target, 0.3, max_queries=300, targeted=True, generator=_gen(5)
    )
    b = square_linf(
        as_predict(model), x, target, 0.3, max_queries=300, targeted=True, generator=_gen(5)
    )
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    with torch.no_grad():
        pred = model(a.x_adv).argmax(1)
    assert bool((pred[a.success] == target[a.success]).all()) and bool(a.success.any())


def test_bad_settings_are_named():
    model, x, y = affine(n=1)
    with pytest.raises(ConfigError, match="p_init"):
        square_linf(as_predict(model), x, y, 0.1, p_init=0.0)
    with pytest.raises(ConfigError, match="max_queries"):
        square_l2(as_predict(model), x, y, 1.0, max_queries=0)
