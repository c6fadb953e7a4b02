"""The shared GAN losses against their closed forms, and the penalties against finite
differences (tiny critics, float64)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advstudio.core.gan import config as gan_config
from advstudio.core.playground import losses
from advstudio.core.playground.losses import d_loss, g_loss, gradient_penalty, r1_penalty

R = torch.tensor([2.0, -1.0])  # D's raw outputs on two real samples
F_ = torch.tensor([0.5, -3.0])  # and on two fakes


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


def test_the_config_offers_the_shared_losses_by_the_same_names():
    assert gan_config.LOSSES == losses.LOSSES
    assert gan_config.BCE_LOSSES == losses.BCE_LOSSES


@pytest.mark.parametrize(
    "kind, want_d, want_g",
    [
        ("minimax", (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, -(sp(0.5) + sp(-3)) / 2),
        ("non-saturating", (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, (sp(-0.5) + sp(3)) / 2),
        ("least-squares", 0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2, 0.5 * (0.25 + 16) / 2),
        ("hinge", (0 + 2) / 2 + (1.5 + 0) / 2, 1.25),
        ("wgan-gp", -1.25 - 0.5, 1.25),
    ],
)
def test_each_loss_equals_its_closed_form(kind, want_d, want_g):
    assert d_loss(kind, R, F_).item() == pytest.approx(want_d, rel=1e-6)
    assert g_loss(kind, F_).item() == pytest.approx(want_g, rel=1e-6)


def test_one_sided_label_smoothing_is_bce_against_one_minus_s():
    s = 0.1
    want = sum(s * sp(r) + (1 - s) * sp(-r) for r in (2.0, -1.0)) / 2 + (sp(0.5) + sp(-3)) / 2
    assert d_loss("non-saturating", R, F_, label_smoothing=s).item() == pytest.approx(want)


def _critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()


def _input_grad_fd(critic: nn.Module, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """d critic / d x of each sample by central differences."""
    grad = torch.zeros_like(x)
    flat = grad.view(len(x), -1)
    for i in range(flat.shape[1]):
        step = torch.zeros_like(x).view(len(x), -1)
        step[:, i] = h
        step = step.view_as(x)
        flat[:, i] = (critic(x + step) - critic(x - step)).flatten() / (2 * h)
    return grad


def test_gradient_penalty_equals_a_finite_difference_computation_on_images():
    critic = _critic()
    g = torch.Generator().manual_seed(1)
    real, fake = (torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64) for _ in "rf")
    eps = torch.rand(3, 1, 1, 1, generator=g, dtype=torch.float64)
    x_hat = eps * real + (1 - eps) * fake
    norms = _input_grad_fd(critic, x_hat).flatten(1).norm(dim=1)
    want = ((norms - 1) ** 2).mean()
    assert gradient_penalty(critic, real, fake, eps).item() == pytest.approx(want.item(), rel=1e-6)


def test_r1_equals_a_finite_difference_computation():
    critic = _critic()
    real = torch.randn(
        3, 1, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    ).requires_grad_(True)
    want = _input_grad_fd(critic, real.detach()).flatten(1).pow(2).sum(dim=1).mean()
    got = r1_penalty(critic(real), real)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    got.backward()  # differentiable w.r.t. the critic's weights
    assert critic[1].weight.grad is not None
