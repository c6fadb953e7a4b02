"""Universal perturbations on a logistic model, where everything has a closed form: the fooling
rate is the share of images whose sign of ``w . clip(x + v) + b`` flips; every DeepFool step is
a multiple of ``-sign(w)``, so Algorithm 1's ``v`` is too, inside the eps-ball."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.attacks.universal import (
    fooling_curve,
    fooling_rate,
    universal_job,
    universal_perturbation,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, drive
from tests.core.helpers import Logistic


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 1, 4, 4, generator=g)


def _model():
    torch.manual_seed(0)
    w = torch.randn(16)
    x = _data(200, 1)
    b = -float((x.flatten(1) @ w).median()) - 0.5  # most images class 0, some class 1
    return Logistic(w, b), w, b


def _hand_rate(w, b, x, v):
    clean = x.flatten(1) @ w + b > 0
    moved = (x + v).clamp(0, 1).flatten(1) @ w + b > 0
    return float((clean != moved).float().mean())


def test_fooling_rate_matches_the_hand_computation():
    model, w, b = _model()
    x = _data(100, 2)
    v = 0.1 * torch.sign(torch.randn(1, 4, 4))
    assert fooling_rate(model, x, v) == pytest.approx(_hand_rate(w, b, x, v))
    assert fooling_curve(model, x, v, 0.1, [0.0, 0.05, 0.1]) == pytest.approx(
        [0.0, _hand_rate(w, b, x, v / 2), _hand_rate(w, b, x, v)]
    )


def test_algorithm_1_on_a_linear_model_is_a_signed_multiple_of_w():
    model, w, b = _model()
    x_fit, x_held = _data(60, 3), _data(100, 4)
    job = universal_job(model, x_fit, x_held, 0.15, passes=3, delta=0.0)
    out = drive(job, keep_events=True)
    res = out.result
    v = res.v.flatten()
    assert v.abs().max() <= 0.15 + 1e-7
    # class-0 images sit below the boundary and class-1 above, so the steps pull both ways
    # along sign(w): every coordinate of v has the same magnitude
    assert torch.allclose(v.abs(), v.abs().max().expand_as(v), atol=1e-6)
    assert torch.equal(torch.sign(v), torch.sign(v[0]) * torch.sign(w) * torch.sign(w[0]))
    assert res.held_out_rate == pytest.approx(_hand_rate(w, b, x_held, res.v))
    assert [e.values["fooling_rate"] for e in out.events if isinstance(e, Metrics)] == res.history
    assert res.fit_rate == max(res.history) > 0.3


def test_targeted_variant_sends_images_to_the_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x_fit, x_held = _data(40, 5), _data(60, 6)
    res = universal_perturbation(model, x_fit, x_held, 0.3, target=2, passes=3)
    with torch.no_grad():
        clean = model(x_held).argmax(1)
        moved = model((x_held + res.v).clamp(0, 1)).argmax(1)
    keep = clean != 2
    assert res.held_out_rate == pytest.approx(float((moved[keep] == 2).float().mean()))
    assert res.held_out_rate > 0.5 and res.target == 2


def test_bad_settings_are_named():
    model, _, _ = _model()
    with pytest.raises(ConfigError, match="delta must be in"):
        universal_perturbation(model, _data(4, 0), _data(4, 1), 0.1, delta=1.0)
