"""Generator and discriminator networks: a plain GAN (MLPs) and a DCGAN (Radford et al. 2016).

Both generators take latent vectors ``z`` of shape (N, latent_dim) (or (N, latent_dim, 1, 1)) and
return images in [-1, 1] (tanh), shape (N, C, H, W). Both discriminators take images in [-1, 1] and
return one *logit* per image, shape (N,): the loss is BCE-with-logits, so no sigmoid layer.

DCGAN, following "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (https://arxiv.org/abs/1511.06434) and pytorch/examples ``dcgan/main.py``:

- strided convolutions in D and transposed convolutions in G, no pooling;
- no fully connected hidden layers: G's first layer is a transposed convolution from the 1x1
  latent "image", D's last layer a convolution down to 1x1;
- BatchNorm in both, except on G's output layer and D's input layer;
- ReLU in G with tanh on the output, LeakyReLU(0.2) in D;
- weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0 (:func:`dcgan_init`).

Layouts (channels of the hidden feature maps, G from the latent to the image; D is the mirror):

==========  ===========  ====================================
image size  start size   G hidden channels
==========  ===========  ====================================
28          7x7          256 -> 128                (28 = 7 * 4)
32          4x4          256 -> 128 -> 64          (32 = 4 * 8)
64          4x4          512 -> 256 -> 128 -> 64   (pytorch/examples)
==========  ===========  ====================================
"""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.gan.config import ARCHS, CHANNELS, IMAGE_SIZES

# image size -> (size of the first feature map, G's hidden channels from the latent outwards)
DCGAN_LAYOUTS: dict[int, tuple[int, tuple[int, ...]]] = {
    28: (7, (256, 128)),
    32: (4, (256, 128, 64)),
    64: (4, (512, 256, 128, 64)),
}

LEAKY_SLOPE = 0.2


def _check_geometry(image_size: int, channels: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, not {image_size}")
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, not {channels}")


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        start, widths = DCGAN_LAYOUTS[image_size]
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        layers: list[nn.Module] = [
            # 1x1 latent -> start x start: a transposed convolution, not a Linear layer
            nn.ConvTranspose2d(latent_dim, widths[0], start, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(True),
        ]
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images (N, channels, image_size, image_size) in [-1, 1] -> logits (N,)."""

    def __init__(self, channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        start, widths = DCGAN_LAYOUTS[image_size]
        widths = widths[::-1]
        self.channels, self.image_size = channels, image_size
        layers: list[nn.Module] = [  # no BatchNorm on the input layer
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        ]
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        # start x start -> 1x1: the output layer is a convolution too
        layers += [nn.Conv2d(widths[-1], 1, start, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


class MLPGenerator(nn.Module):
    """The plain GAN's generator (Goodfellow et al. 2014, with ReLU hidden units):
    z -> 256 -> 512 -> C*H*W (tanh)."""

    def __init__(self, latent_dim: int = 100, channels: int = 1, image_size: int = 28,
                 hidden: tuple[int, int] = (256, 512)) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.main = nn.Sequential(
            nn.Linear(latent_dim, hidden[0]), nn.ReLU(True),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(True),
            nn.Linear(hidden[1], channels * image_size * image_size), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.main(z.reshape(z.shape[0], self.latent_dim))
        return out.view(z.shape[0], self.channels, self.image_size, self.image_size)


class MLPDiscriminator(nn.Module):
    """The plain GAN's discriminator: C*H*W -> 512 -> 256 -> 1 logit, LeakyReLU(0.2)."""

    def __init__(self, channels: int = 1, image_size: int = 28,
                 hidden: tuple[int, int] = (512, 256)) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        self.channels, self.image_size = channels, image_size
        self.main = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, hidden[0]),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Linear(hidden[0], hidden[1]), nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation, applied with ``net.apply(dcgan_init)``: convolution
    weights N(0, 0.02); BatchNorm weights N(1, 0.02) and biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_networks(arch: str = "dcgan", latent_dim: int = 100, channels: int = 1,
                   image_size: int = 28) -> tuple[nn.Module, nn.Module]:
    """A fresh ``(generator, discriminator)`` pair, initialised from the global torch RNG.

    The plain GAN keeps PyTorch's default initialisation (the N(0, 0.02) recipe is DCGAN's and
    makes an MLP's outputs vanish); the DCGAN gets :func:`dcgan_init`.
    """
    if arch == "dcgan":
        g = DCGANGenerator(latent_dim, channels, image_size)
        d = DCGANDiscriminator(channels, image_size)
        g.apply(dcgan_init)
        d.apply(dcgan_init)
        return g, d
    if arch == "gan":
        return MLPGenerator(latent_dim, channels, image_size), MLPDiscriminator(channels, image_size)
    raise ValueError(f"unknown GAN architecture {arch!r}; known: {', '.join(ARCHS)}")
