"""Interval bound propagation: exact on one affine layer, sound on the built-in digit nets,
never contradicted by PGD, and its training loss reduces to cross-entropy at eps 0."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.whitebox import pgd
from advstudio.core.certify.ibp import (
    ibp_layers,
    ibp_loss,
    ibp_schedule,
    interval_bounds,
    margin_lower_bounds,
    verified,
)
from advstudio.core.data import load_digits
from advstudio.core.errors import ConfigError
from advstudio.core.models.registry import load_builtin


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("test")
    return x[:8], y[:8]


def points_in_box(x: torch.Tensor, eps: float, count: int, seed: int) -> torch.Tensor:
    """``count`` points of the L-inf box around one image ``x`` (1, C, H, W), cut to [0, 1]:
    half uniform, half vertices (where the extremes of a piecewise-linear net tend to be)."""
    low, high = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    u = torch.rand((count, *x.shape[1:]), generator=gen(seed))
    u[count // 2 :] = u[count // 2 :].round()
    return low + u * (high - low)


def test_one_linear_layer_is_exact():
    layer = nn.Linear(6, 3)
    x = 0.3 + 0.4 * torch.rand(2, 6, generator=gen(0))
    eps = 0.2  # the box stays inside [0, 1]
    low, high = interval_bounds(nn.Sequential(layer), x, eps)
    with torch.no_grad():
        centre = x @ layer.weight.T + layer.bias
        spread = eps * layer.weight.abs().sum(1)
        assert torch.allclose(low, centre - spread, atol=1e-6)
        assert torch.allclose(high, centre + spread, atol=1e-6)
        # the bounds are reached: the vertex x + eps * sign(w_k) gives logit k's upper bound
        for k in range(3):
            vertex = x + eps * layer.weight[k].sign()
            assert torch.allclose(layer(vertex)[:, k], high[:, k], atol=1e-6)


def test_the_box_is_cut_to_pixel_range():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0]]))
    low, high = interval_bounds(nn.Sequential(layer), torch.tensor([[0.0, 1.0]]), 0.5)
    # x1 in [0, 0.5], x2 in [0.5, 1] (not [-0.5, 0.5] and [0.5, 1.5]): x1 - x2 in [-1, 0]
    assert (low.item(), high.item()) == (-1.0, 0.0)


@pytest.mark.parametrize("key", ["digits-cnn", "digits-mlp", "digits-cnn-pgd"])
def test_bounds_contain_every_sampled_output_of_the_builtin_nets(key, digits):
    model = load_builtin(key)
    x, y = digits[0][:2], digits[1][:2]
    eps = 0.02
    low, high = interval_bounds(model, x, eps)
    margins = margin_lower_bounds(model, x, y, eps)
    assert torch.allclose(interval_bounds(model, x, 0.0)[0], model(x), atol=1e-4)
    for i in range(len(x)):
        points = points_in_box(x[i : i + 1], eps, 1000, seed=i)
        with torch.no_grad():
            out = model(points)
        assert (out >= low[i] - 1e-4).all() and (out <= high[i] + 1e-4).all()
        actual_margins = out[:, y[i] : y[i] + 1] - out
        assert (actual_margins >= margins[i] - 1e-4).all()


def test_batchnorm_with_negative_scales_is_bounded_soundly():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
    )
    bn = net[2]
    with torch.no_grad():
        bn.weight.copy_(torch.randn(8))  # some scales negative
        bn.running_mean.copy_(torch.randn(8))
        bn.running_var.copy_(torch.rand(8) + 0.5)
    net.eval()
    x = torch.rand(1, 1, 3, 4, generator=gen(1))
    low, high = interval_bounds(net, x, 0.1)
    with torch.no_grad():
        out = net(points_in_box(x, 0.1, 2000, seed=2))
    assert (out >= low - 1e-5).all() and (out <= high + 1e-5).all()


def test_elided_margins_are_at_least_as_tight_as_the_plain_bounds(digits):
    model = load_builtin("digits-mlp")
    x, y = digits
    low, high = interval_bounds(model, x, 0.01)
    plain = low.gather(1, y.view(-1, 1)) - high
    elided = margin_lower_bounds(model, x, y, 0.01)
    off = ~F.one_hot(y, 10).bool()
    assert (elided[off] >= plain[off] - 1e-5).all()
    assert (elided[off] > plain[off] + 1e-3).any()


def test_a_verified_image_is_never_broken_by_pgd(digits):
    model = load_builtin("digits-cnn-pgd")
    x, y = digits
    eps = 0.008
    proven = verified(model, x, y, eps)
    assert proven.any()
    x_adv = pgd(model, x, y, eps, alpha=eps / 4, steps=20, generator=gen(0))
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
        correct = model(x).argmax(1) == y
    assert not (proven & ~robust).any()
    assert not (proven & ~correct).any()
    assert verified(model, x, y, 0.5).sum() == 0


def test_unbounded_layers_are_named():
    with pytest.raises(ConfigError, match="Tanh"):
        ibp_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Tanh()))

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.lin(x)

    with pytest.raises(ConfigError, match="Residual"):
        ibp_layers(nn.Sequential(Residual()))
    with pytest.raises(ConfigError, match="running statistics"):
        ibp_layers(nn.Sequential(nn.BatchNorm1d(4, track_running_stats=False)))


def test_images_of_another_shape_are_refused(digits):
    with pytest.raises(ConfigError, match="model's shape"):
        verified(load_builtin("digits-mlp"), torch.rand(1, 1, 14, 14), torch.tensor([0]), 0.1)


def test_ibp_loss_is_cross_entropy_at_eps_zero_and_grows_with_eps(digits):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    x, y = digits
    ce = F.cross_entropy(net(x), y)
    for kappa in (1.0, 0.5, 0.0):
        assert ibp_loss(net, x, y, 0.0, kappa).item() == pytest.approx(ce.item(), rel=1e-5)
    losses = [ibp_loss(net, x, y, eps, 0.0).item() for eps in (0.0, 0.01, 0.05, 0.1)]
    assert losses == sorted(losses) and losses[-1] > losses[0]
    mixed = ibp_loss(net, x, y, 0.05, 0.25)
    assert mixed.item() == pytest.approx(0.25 * ce.item() + 0.75 * losses[2], rel=1e-5)
    mixed.backward()
    assert net[1].weight.grad is not None and net[1].weight.grad.abs().sum() > 0


def test_ibp_schedule_warms_up_then_ramps_linearly():
    schedule = [
        ibp_schedule(s, eps=0.4, kappa_final=0.5, warmup_steps=10, ramp_steps=20)
        for s in (0, 9, 10, 20, 30, 100)
    ]
    expected = [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.2, 0.75), (0.4, 0.5), (0.4, 0.5)]
    assert schedule == [pytest.approx(e) for e in expected]
