"""Universal perturbations against ε on colour images: the fooling-rate curve of a logistic
model matches the hand computation (every fit a signed multiple of ``w``), rescaling one ``v``
along ``sign(w)`` gives a non-decreasing curve, and on a tiny colour CNN the perturbation has
the images' shape and stays in its ε-ball."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.universal import (
    apply,
    eps_curve_job,
    fooling_curve,
    rescaled_curve_job,
    universal_perturbation,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, Progress, drive
from tests.core.helpers import Logistic

SHAPE = (3, 4, 4)


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, *SHAPE, generator=g)


def _model():
    torch.manual_seed(0)
    w = torch.randn(48)
    x = _data(200, 1)
    b = -float((x.flatten(1) @ w).median()) - 0.5
    return Logistic(w, b), w, b


def _hand_rate(w, b, x, v):
    clean = x.flatten(1) @ w + b > 0
    moved = (x + v).clamp(0, 1).flatten(1) @ w + b > 0
    return float((clean != moved).float().mean())


def test_the_curve_over_eps_matches_the_hand_computation():
    model, w, b = _model()
    x_fit, x_held = _data(40, 3), _data(80, 4)
    eps_values = [0.0, 0.05, 0.1, 0.2]
    out = drive(eps_curve_job(model, x_fit, x_held, eps_values, passes=2), keep_events=True)
    curve = out.result
    assert curve.eps == eps_values and curve.refit and len(curve.held_out) == 4
    for e, v, rate in zip(eps_values, curve.perturbations, curve.held_out, strict=True):
        assert v.shape == SHAPE and float(v.abs().max()) <= e + 1e-7
        assert rate == pytest.approx(_hand_rate(w, b, x_held, v))
    # each point is the fit at that ε on its own (same seed)
    alone = universal_perturbation(model, x_fit, x_held, 0.1, passes=2)
    assert torch.equal(alone.v, curve.perturbations[2])
    assert curve.held_out[0] == 0.0 and curve.held_out[-1] >= curve.held_out[1] > 0
    metrics = [e.values for e in out.events if isinstance(e, Metrics) and "eps" in e.values]
    assert [m["eps"] for m in metrics] == eps_values
    assert [m["fooling_rate"] for m in metrics] == curve.held_out
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    assert progress[-1].done == progress[-1].total


def test_a_rescaled_perturbation_along_sign_w_fools_more_as_eps_grows():
    model, w, b = _model()
    x_fit, x_held = _data(40, 5), _data(200, 6)
    v = 0.3 * torch.sign(w).view(SHAPE)  # pushes every class-0 image towards class 1
    eps_values = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
    curve = drive(rescaled_curve_job(model, x_fit, x_held, v, 0.3, eps_values)).result
    want = [_hand_rate(w, b, x_held, v * e / 0.3) for e in eps_values]
    assert curve.held_out == pytest.approx(want) and not curve.refit
    assert curve.held_out == pytest.approx(fooling_curve(model, x_held, v, 0.3, eps_values))
    assert curve.held_out == sorted(curve.held_out) and curve.held_out[-1] > 0.3
    with pytest.raises(ConfigError, match="at least one"):
        drive(rescaled_curve_job(model, x_fit, x_held, v, 0.3, []))


def test_a_colour_cnn_gets_a_colour_perturbation():
    from tests.core.colour_data import ColourNet

    torch.manual_seed(0)
    model = ColourNet().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=g)
    res = universal_perturbation(model, x[:6], x[6:], 0.05, passes=1)
    assert res.v.shape == (3, 32, 32) and float(res.v.abs().max()) <= 0.05 + 1e-7
    assert res.v.abs().sum() > 0
    with torch.no_grad():
        clean, moved = model(x[6:]).argmax(1), model(apply(x[6:], res.v)).argmax(1)
    assert res.held_out_rate == pytest.approx(float((clean != moved).float().mean()))
