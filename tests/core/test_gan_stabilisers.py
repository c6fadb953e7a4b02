"""Spectral norm, the moving average of G, minibatch std and the conditional networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.gan import GanConfig
from advstudio.core.gan.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    build_networks,
    network_options,
)
from advstudio.core.gan.stabilisers import MinibatchStd, ema_update, spectral_norm_all


def test_spectral_norm_brings_the_largest_singular_value_to_one():
    torch.manual_seed(0)
    net = spectral_norm_all(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 5)))
    x = torch.randn(2, 3, 3, 3)
    for _ in range(50):  # one power iteration per forward pass in train mode
        net(x)
    net.eval()
    for layer in (net[0], net[2]):
        sigma = torch.linalg.matrix_norm(layer.weight.reshape(layer.weight.shape[0], -1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)


def test_the_moving_average_equals_the_formula_after_k_steps():
    torch.manual_seed(0)
    current = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average.load_state_dict(current.state_dict())
    beta, thetas = 0.9, [current[0].weight.detach().clone()]
    for _ in range(5):
        with torch.no_grad():
            current[0].weight.add_(torch.randn(2, 3))
            current[1].running_mean.add_(1.0)
        thetas.append(current[0].weight.detach().clone())
        ema_update(average, current, beta)
    k = len(thetas) - 1
    want = beta**k * thetas[0] + sum(
        (1 - beta) * beta ** (k - i) * thetas[i] for i in range(1, k + 1)
    )
    assert torch.allclose(average[0].weight, want, atol=1e-6)
    assert torch.equal(average[1].running_mean, current[1].running_mean)  # buffers copied


def test_minibatch_std_adds_the_batch_spread_as_one_map():
    x = torch.tensor([[[[0.0, 2.0]]], [[[2.0, 2.0]]]])  # (2, 1, 1, 2): stds 1 and 0
    out = MinibatchStd()(x)
    assert out.shape == (2, 2, 1, 2)
    assert torch.allclose(out[:, 1], torch.full((2, 1, 2), 0.5), atol=1e-3)


def test_a_conditional_generator_uses_its_label_and_its_d_sees_the_label():
    torch.manual_seed(0)
    g, d = (
        DCGANGenerator(16, 1, 28, num_classes=10, width=8),
        DCGANDiscriminator(1, 28, num_classes=10, width=8),
    )
    g.eval(), d.eval()
    z = torch.randn(1, 16).expand(2, 16)
    with torch.no_grad():
        pair = g(z, torch.tensor([3, 7]))
        assert not torch.allclose(pair[0], pair[1]), "same noise, other class: other image"
        x = pair[:1].expand(2, -1, -1, -1)
        out = d(x, torch.tensor([3, 7]))
    assert out.shape == (2,) and out[0] != out[1], "same image, other label: other score"
    with pytest.raises(ValueError, match="one class label per sample"):
        g(z)


@pytest.mark.parametrize(
    "kw, batch_norm", [({}, True), ({"loss": "wgan-gp"}, False), ({"spectral_norm": True}, False)]
)
def test_d_drops_batchnorm_for_wgan_gp_and_spectral_norm(kw, batch_norm):
    _, d = build_networks("dcgan", 100, 1, 28, **network_options(GanConfig(width=8, **kw)))
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == batch_norm


@pytest.mark.parametrize("size, channels", [(32, 3), (64, 3), (64, 1)])
def test_the_new_options_take_any_image_shape(size, channels):
    cfg = GanConfig(
        image_size=size,
        channels=channels,
        width=4,
        conditional=True,
        minibatch_std=True,
        spectral_norm=True,
    )
    g, d = build_networks("dcgan", 8, channels, size, **network_options(cfg))
    y = torch.tensor([0, 9])
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, channels, size, size) and d(x, y).shape == (2,)
