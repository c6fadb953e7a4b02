"""The TRADES loss against its formula on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.certify.trades import (
    kl_divergence,
    trades_adversary,
    trades_loss,
    trades_objective,
)
from tests.core.helpers import Logistic


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def test_beta_zero_is_plain_cross_entropy():
    net = tiny_net()
    x, y = torch.rand(5, 1, 4, 4, generator=gen(0)), torch.tensor([0, 1, 2, 1, 0])
    expected = F.cross_entropy(net(x), y)
    assert trades_loss(net, x, y, beta=0.0, eps=0.1).item() == pytest.approx(expected.item())


def test_objective_matches_a_hand_computed_kl():
    """Logistic [0, z]: p = (1 - s(z), s(z)); KL(p || q) = sum p log(p / q), batch mean."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = Logistic(w, 0.2)
    x = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.9, 0.1, 0.5, 0.0]])
    x_adv = x + torch.tensor([[0.05, -0.05, 0.05, -0.05], [-0.1, 0.1, 0.0, 0.1]])
    y = torch.tensor([1, 0])
    beta = 3.0
    kl, ce = 0.0, 0.0
    for xi, ai, yi in zip(x.tolist(), x_adv.tolist(), y.tolist()):
        z = sum(a * b for a, b in zip(xi, w.tolist())) + 0.2
        za = sum(a * b for a, b in zip(ai, w.tolist())) + 0.2
        p = [1 - 1 / (1 + math.exp(-z)), 1 / (1 + math.exp(-z))]
        q = [1 - 1 / (1 + math.exp(-za)), 1 / (1 + math.exp(-za))]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 2
        ce += -math.log(p[yi]) / 2
    got = trades_objective(model, x, x_adv, y, beta)
    assert got.item() == pytest.approx(ce + beta * kl, rel=1e-5)


def test_adversary_stays_in_the_ball_and_raises_the_kl():
    net = tiny_net()
    x = torch.rand(6, 1, 4, 4, generator=gen(1))
    eps = 0.1
    start = trades_adversary(net, x, eps=eps, step_size=0.02, steps=0, generator=gen(2))
    x_adv = trades_adversary(net, x, eps=eps, step_size=0.02, steps=10, generator=gen(2))
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        clean = net(x)
        assert kl_divergence(clean, net(x_adv)) > 10 * kl_divergence(clean, net(start))


def test_loss_trains_in_the_callers_mode_and_attacks_in_eval_mode():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    x, y = torch.rand(4, 1, 4, 4, generator=gen(3)), torch.tensor([0, 1, 2, 0])
    loss = trades_loss(net, x, y, beta=6.0, eps=0.1, step_size=0.02, steps=3, generator=gen(4))
    assert net.training and net[2].training
    loss.backward()
    assert net[1].weight.grad.abs().sum() > 0
