"""Black-box attacks: the target is only queried (never differentiated), budgets hold, they work."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advstudio.core.attacks import (
    Oracle,
    as_predict,
    fgsm,
    margin,
    mifgsm,
    nes,
    simba,
    spsa,
    transfer,
)
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import ConfigError
from advstudio.core.models.registry import load_builtin


@pytest.fixture(scope="module")
def mlp():
    return load_builtin("digits-mlp")


class SpyTarget:
    """A black box around a real module whose parameters require grad: fails on any query made
    with autograd on, and counts the images it was sent."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.images = 0
        assert all(p.requires_grad for p in model.parameters())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "the target was queried with autograd enabled"
        self.images += len(x)
        out = torch.softmax(self.model(x), 1)
        assert not out.requires_grad
        return out


def _predicted(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def test_target_is_never_differentiated_and_every_query_is_counted(cnn):
    target = load_builtin("digits-mlp")
    x, y = sweep_images(4, seed=3)
    spy = SpyTarget(target)
    res = transfer(cnn, spy, x, y, attack=fgsm, eps=0.2)
    assert spy.images == res.queries == 8
    gen = torch.Generator().manual_seed(0)
    for attack in (
        lambda: nes(spy, x, y, 0.2, max_queries=100, generator=gen),
        lambda: spsa(spy, x, y, 0.2, max_queries=100, generator=gen),
        lambda: simba(spy, x, y, max_queries=100, generator=gen),
    ):
        spy.images = 0
        out = attack()
        assert spy.images == int(out.queries.sum())  # no hidden queries
        assert int(out.queries.max()) <= 100
    assert all(p.grad is None for p in target.parameters())
    assert all(p.grad is None for p in cnn.parameters())


def test_oracle_takes_logits_or_probabilities_and_margin_signs():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    from_logits = Oracle(lambda x: logits).log_probs(torch.zeros(2, 1, 1, 1))
    from_probs = Oracle(lambda x: torch.softmax(logits, 1)).log_probs(torch.zeros(2, 1, 1, 1))
    assert torch.allclose(from_logits, from_probs, atol=1e-5)
    labels = torch.tensor([0, 0])
    m = margin(from_logits, labels, targeted=False)
    # image 0 is class 0 (margin < 0: not yet fooled), image 1 is class 1 (fooled by 3 - 0)
    assert m[0] == pytest.approx(-1.5, abs=1e-5) and m[1] == pytest.approx(3.0, abs=1e-5)
    mt = margin(from_logits, torch.tensor([1, 1]), targeted=True)
    assert mt[0] == pytest.approx(-1.5, abs=1e-5) and mt[1] == pytest.approx(2.0, abs=1e-5)


def test_transfer_from_the_mlp_to_the_cnn(cnn, mlp):
    x, y = sweep_images(200, seed=0)
    res = transfer(mlp, as_predict(cnn), x, y, attack=fgsm, eps=0.3)
    res_mi = transfer(mlp, as_predict(cnn), x, y, attack=mifgsm, eps=0.3, alpha=0.03, steps=10)
    assert torch.equal(res.adv_pred, _predicted(cnn, res.x_adv))
    assert (res.x_adv - x).abs().max() <= 0.3 + 1e-6
    print(
        f"\ntransfer MLP -> CNN at eps .3 on 200 digits: FGSM {res.success_rate:.2f} "
        f"(on the MLP {res.surrogate_success.float().mean():.2f}), "
        f"MI-FGSM {res_mi.success_rate:.2f}"
    )
    assert res.surrogate_success.float().mean() > 0.9
    assert res.success_rate > 0.3
    assert res_mi.success_rate > 0.3


@pytest.mark.parametrize("attack", [nes, spsa])
def test_query_sign_attacks_reduce_accuracy_within_eps_and_budget(cnn, attack):
    x, y = sweep_images(6, seed=2)
    res = attack(
        as_predict(cnn), x, y, 0.3, max_queries=400, generator=torch.Generator().manual_seed(0)
    )
    pred = _predicted(cnn, res.x_adv)
    clean_acc = float((_predicted(cnn, x) == y).float().mean())
    adv_acc = float((pred == y).float().mean())
    print(
        f"\n{attack.__name__} eps .3, budget 400, 6 digits: accuracy {clean_acc:.2f} -> "
        f"{adv_acc:.2f}, queries {res.queries.tolist()}"
    )
    assert adv_acc <= clean_acc - 0.5
    assert torch.equal(res.success, pred != y)
    assert (res.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert int(res.queries.max()) <= 400 and int(res.queries.min()) >= 1


def test_targeted_nes_aims_at_the_target(mlp):
    x, y = sweep_images(6, seed=4)
    target = (y + 1) % 10
    res = nes(
        as_predict(mlp),
        x,
        target,
        0.3,
        max_queries=600,
        targeted=True,
        y_true=y,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(res.success, _predicted(mlp, res.x_adv) == target)
    assert res.success.any()
    with pytest.raises(ConfigError, match="is the true class"):
        nes(as_predict(mlp), x, y, 0.3, targeted=True, y_true=y)


def test_simba_respects_the_budget_and_step(mlp):
    x, y = sweep_images(8, seed=5)
    res = simba(
        as_predict(mlp), x, y, step=0.3, max_queries=300, generator=torch.Generator().manual_seed(0)
    )
    print(
        f"\nSimBA on the MLP, step .3, budget 300, 8 digits: success "
        f"{res.success_rate:.2f}, queries {res.queries.tolist()}"
    )
    assert int(res.queries.max()) <= 300
    assert (res.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.success, _predicted(mlp, res.x_adv) != y)
    assert res.success.any()
    # a finished image stopped spending queries; an unfinished one used its whole budget
    # (give or take one: a pixel can cost 2 queries)
    assert all(q >= 299 for q, s in zip(res.queries.tolist(), res.success.tolist()) if not s)


@pytest.mark.slow
def test_simba_on_the_cnn(cnn):
    x, y = sweep_images(4, seed=2)
    res = simba(
        as_predict(cnn), x, y, step=0.3, max_queries=400, generator=torch.Generator().manual_seed(0)
    )
    print(
        f"\nSimBA on the CNN, step .3, budget 400, 4 digits: success {res.success_rate:.2f}, "
        f"queries {res.queries.tolist()}"
    )
    assert int(res.queries.max()) <= 400
    assert torch.equal(res.success, _predicted(cnn, res.x_adv) != y)


def test_black_box_validation(mlp):
    x, y = sweep_images(2, seed=0)
    with pytest.raises(ConfigError, match="max_queries 10 is too small"):
        nes(as_predict(mlp), x, y, 0.2, max_queries=10)
    with pytest.raises(ConfigError, match="1.5"):
        spsa(as_predict(mlp), x, y, 1.5)
    with pytest.raises(ConfigError, match="step .* -0.1"):
        simba(as_predict(mlp), x, y, step=-0.1)
    with pytest.raises(ConfigError, match="max_queries"):
        simba(as_predict(mlp), x, y, max_queries=0)


def test_nothing_to_do_costs_one_query(mlp):
    x, y = sweep_images(3, seed=0)
    wrong = (_predicted(mlp, x) + 1) % 10  # "true" labels the model already misses
    res = nes(as_predict(mlp), x, wrong, 0.2, max_queries=100)
    assert res.success.all() and res.queries.tolist() == [1, 1, 1]
    assert torch.equal(res.x_adv, x)
    assert math.isclose(res.success_rate, 1.0)
