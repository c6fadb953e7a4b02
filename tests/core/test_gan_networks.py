"""GAN / DCGAN networks: shapes for every geometry, and Radford et al.'s architecture rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.gan.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    build_networks,
)

GEOMETRIES = [(s, c) for s in (28, 32, 64) for c in (1, 3)]


@pytest.mark.parametrize("arch", ["dcgan", "gan"])
@pytest.mark.parametrize(("size", "channels"), GEOMETRIES)
def test_shapes_and_ranges(arch, size, channels):
    torch.manual_seed(0)
    g, d = build_networks(arch, latent_dim=16, channels=channels, image_size=size)
    z = torch.randn(3, 16)
    x = g(z)
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert torch.equal(g(z.view(3, 16, 1, 1)), x)  # (N, nz, 1, 1) latents work too
    logits = d(x)
    assert logits.shape == (3,)
    assert torch.isfinite(logits).all()


def _modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if not list(m.children())]


@pytest.mark.parametrize(("size", "channels"), GEOMETRIES)
def test_dcgan_follows_radford(size, channels):
    g, d = build_networks("dcgan", 100, channels, size)
    pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    for net in (g, d):
        layers = _modules(net)
        assert not any(isinstance(m, pooling) for m in layers), "no pooling"
        assert not any(isinstance(m, nn.Linear) for m in layers), "no fully connected layers"
        assert not any(isinstance(m, nn.Dropout) for m in layers)

    gl = _modules(g)
    assert isinstance(gl[0], nn.ConvTranspose2d) and gl[0].in_channels == 100  # from 1x1 latent
    convs = [i for i, m in enumerate(gl) if isinstance(m, nn.ConvTranspose2d)]
    for i in convs[:-1]:  # BatchNorm then ReLU after every hidden layer
        assert isinstance(gl[i + 1], nn.BatchNorm2d) and isinstance(gl[i + 2], nn.ReLU)
    assert isinstance(gl[convs[-1] + 1], nn.Tanh) and gl[-1] is gl[convs[-1] + 1]  # no BN on output
    assert all(m.stride == (2, 2) for m in (gl[i] for i in convs[1:]))  # fractionally strided
    assert not any(isinstance(m, (nn.Conv2d, nn.LeakyReLU)) for m in gl)

    dl = _modules(d)
    convs = [i for i, m in enumerate(dl) if isinstance(m, nn.Conv2d)]
    assert convs[0] == 0 and isinstance(dl[1], nn.LeakyReLU)  # no BN on the input layer
    for i in convs[1:-1]:
        assert isinstance(dl[i + 1], nn.BatchNorm2d) and isinstance(dl[i + 2], nn.LeakyReLU)
    assert all(dl[i].stride == (2, 2) for i in convs[:-1])  # strided convs downsample
    assert dl[-1] is dl[convs[-1]]  # output: a conv to 1x1 logits, no sigmoid (BCE with logits)
    assert all(m.negative_slope == pytest.approx(0.2) for m in dl if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid)) for m in dl)


def test_dcgan_28_layout_matches_spec():
    g = DCGANGenerator(100, 1, 28)
    shapes = []
    h = torch.randn(2, 100, 1, 1)
    for m in g.main:
        h = m(h)
        if isinstance(m, nn.ConvTranspose2d):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(256, 7, 7), (128, 14, 14), (1, 28, 28)]
    d = DCGANDiscriminator(1, 28)
    h = torch.randn(2, 1, 28, 28)
    shapes = []
    for m in d.main:
        h = m(h)
        if isinstance(m, nn.Conv2d):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(128, 14, 14), (256, 7, 7), (1, 1, 1)]


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    g, d = build_networks("dcgan", 100, 1, 64)
    conv_w = torch.cat(
        [
            m.weight.flatten()
            for net in (g, d)
            for m in net.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
        ]
    )
    assert abs(conv_w.mean().item()) < 1e-3
    assert conv_w.std().item() == pytest.approx(0.02, rel=0.02)
    bns = [m for net in (g, d) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_w = torch.cat([m.weight.flatten() for m in bns])
    assert bn_w.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert bn_w.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)
    assert all(
        m.bias is None
        for net in (g, d)
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    )


def test_plain_gan_is_mlp():
    g, d = build_networks("gan", 100, 1, 28)
    assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
    assert not any(
        isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for net in (g, d) for m in net.modules()
    )
    assert isinstance(_modules(g)[-1], nn.Tanh)
    assert isinstance(_modules(d)[-1], nn.Linear) and _modules(d)[-1].out_features == 1
    assert all(
        m.negative_slope == pytest.approx(0.2) for m in d.modules() if isinstance(m, nn.LeakyReLU)
    )


def test_bad_geometry_and_arch():
    with pytest.raises(ValueError, match="unknown GAN architecture 'wgan'"):
        build_networks("wgan")
    with pytest.raises(ValueError, match="image_size must be one of"):
        DCGANGenerator(100, 1, 48)
    with pytest.raises(ValueError, match="channels must be one of"):
        DCGANDiscriminator(4, 28)
