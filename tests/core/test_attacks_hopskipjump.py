"""HopSkipJump: labels are all it uses, every query is counted within the budget, and on a
linear model it ends within 10 % of the closed-form distance to the hyperplane."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.hopskipjump import as_label_predict, hop_skip_jump
from advstudio.core.errors import ConfigError
from tests.core.linear import ScoresOnly, affine, boundary


class LabelsOnly:
    """A label-only black box around a spy: the argmax of each query and nothing else."""

    def __init__(self, model) -> None:
        self.spy = ScoresOnly(model)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.spy(x).argmax(1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _beyond(model, x, y, t) -> torch.Tensor:
    """Starts across the y / t boundary: twice the minimal L2 step along w_t - w_y (uniform
    noise often stays in class y on these models, whose bias-free scores barely vary)."""
    gap, dw = boundary(model, x, y, t)
    starts = (x + (2 * gap / dw.pow(2).sum(1))[:, None].mul(dw).view_as(x)).clamp(0, 1)
    with torch.no_grad():
        assert torch.equal(model(starts).argmax(1), t)
    return starts


def test_it_breaks_a_linear_model_from_labels_alone_and_reaches_the_boundary():
    model, x, y = affine(classes=2, n=4)
    box = LabelsOnly(model)
    res = hop_skip_jump(
        box, x, y, max_queries=2000, starts=_beyond(model, x, y, 1 - y), generator=_gen()
    )
    assert bool(res.success.all())
    with torch.no_grad():
        assert bool((model(res.x_adv).argmax(1) != y).all())
    assert box.spy.images == int(res.queries.sum()) and int(res.queries.max()) <= 2000
    assert all(p.grad is None for p in model.parameters())
    gap, dw = boundary(model, x, y, 1 - y)
    ratio = (res.x_adv - x).flatten(1).norm(dim=1) / (gap / dw.norm(dim=1))
    assert bool((ratio >= 0.999).all()) and bool((ratio <= 1.10).all())


def test_more_queries_bring_it_closer():
    model, x, y = affine(classes=2, side=10, n=2)
    starts = _beyond(model, x, y, 1 - y)
    dists = [
        (
            hop_skip_jump(
                as_label_predict(model), x, y, max_queries=q, starts=starts, generator=_gen()
            ).x_adv
            - x
        )
        .flatten(1)
        .norm(dim=1)
        for q in (300, 3000)
    ]
    assert bool((dists[1] < dists[0]).all())


def test_targeted_from_a_start_of_the_target_class():
    model, x, y = affine(classes=3, n=3)
    target = (y + 1) % 3
    starts = _beyond(model, x, y, target)
    res = hop_skip_jump(
        as_label_predict(model),
        x,
        target,
        targeted=True,
        max_queries=1500,
        starts=starts,
        generator=_gen(),
    )
    with torch.no_grad():
        assert torch.equal(model(res.x_adv).argmax(1)[res.success], target[res.success])
    assert bool(res.success.all())
    assert bool(
        ((res.x_adv - x).flatten(1).norm(dim=1) < (starts - x).flatten(1).norm(dim=1)).all()
    )


def test_no_adversarial_start_leaves_the_image_and_reports_failure():
    model, x, y = affine(classes=3, n=1)
    never = lambda z: torch.full((len(z),), int(y[0]))  # noqa: E731 - always class y
    res = hop_skip_jump(never, x, y, max_queries=50, init_trials=10, generator=_gen())
    assert torch.equal(res.x_adv, x) and not bool(res.success[0])
    assert int(res.queries[0]) == 11  # the clean query + 10 draws


def test_bad_settings_are_named():
    model, x, y = affine(n=1)
    with pytest.raises(ConfigError, match="gamma"):
        hop_skip_jump(as_label_predict(model), x, y, gamma=0.0)
    with pytest.raises(ConfigError, match="class indices"):
        hop_skip_jump(lambda z: torch.zeros(len(z), 3), x, y)


def test_the_label_box_runs_a_training_model_in_eval_mode_and_restores_it():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.9), torch.nn.Linear(4, 3))
    model.train()
    x = torch.rand(50, 1, 2, 2)
    predict = as_label_predict(model)
    first, again = predict(x), predict(x)
    assert torch.equal(first, again)  # no dropout noise: eval mode
    assert model.training and model[1].training
