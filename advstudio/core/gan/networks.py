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
from advstudio.core.gan.stabilisers import MinibatchStd, spectral_norm_all

# image size -> (size of the first feature map, G's hidden channels from the latent outwards,
# in units of ``width``, pytorch/examples' ngf / ndf: 64 gives the table above)
DCGAN_LAYOUTS: dict[int, tuple[int, tuple[int, ...]]] = {
    28: (7, (4, 2)),
    32: (4, (4, 2, 1)),
    64: (4, (8, 4, 2, 1)),
}
DEFAULT_WIDTH = 64

LEAKY_SLOPE = 0.2


def _check_geometry(image_size: int, channels: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, not {image_size}")
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, not {channels}")


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, image_size, image_size) in [-1, 1].

    Conditional (``num_classes`` > 0, Mirza and Osindero 2014): a learned embedding of the
    label, ``num_classes`` numbers, is concatenated to z; ``forward(z, labels)``."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 0,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        start, units = DCGAN_LAYOUTS[image_size]
        widths = tuple(u * width for u in units)
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.num_classes = num_classes
        layers: list[nn.Module] = [
            # 1x1 latent -> start x start: a transposed convolution, not a Linear layer
            nn.ConvTranspose2d(latent_dim + num_classes, widths[0], start, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(widths, widths[1:]):
            layers += [
                nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        if num_classes:
            self.embed = nn.Embedding(num_classes, num_classes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.latent_dim)
        if self.num_classes:
            z = torch.cat([z, self.embed(_labels(labels, z))], dim=1)
        return self.main(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """images (N, channels, image_size, image_size) in [-1, 1] -> logits (N,).

    ``batch_norm=False`` drops BatchNorm (a WGAN-GP critic's penalty is per sample, and spectral
    normalisation replaces it); ``minibatch_std`` adds :class:`MinibatchStd` before the output
    layer. Conditional (``num_classes`` > 0): Miyato and Koyama 2018's projection
    discriminator, D(x, y) = head(h) + <embed(y), sum of h over positions>, h the last
    feature maps; ``forward(x, labels)``."""

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 0,
        batch_norm: bool = True,
        minibatch_std: bool = False,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        start, units = DCGAN_LAYOUTS[image_size]
        widths = tuple(u * width for u in units[::-1])
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        layers: list[nn.Module] = [  # no BatchNorm on the input layer
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        ]
        for cin, cout in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
                *([nn.BatchNorm2d(cout)] if batch_norm else []),
                nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            ]
        if minibatch_std:
            layers.append(MinibatchStd())
        features = widths[-1] + int(minibatch_std)
        # start x start -> 1x1: the output layer is a convolution too
        layers += [nn.Conv2d(features, 1, start, 1, 0, bias=False)]
        # one Sequential, so the default network keeps the state-dict keys of old checkpoints
        self.main = nn.Sequential(*layers)
        if num_classes:
            self.embed = nn.Embedding(num_classes, features)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not self.num_classes:
            return self.main(x).flatten()
        h = self.main[:-1](x)
        projection = (self.embed(_labels(labels, h)) * h.sum(dim=(2, 3))).sum(dim=1)
        return self.main[-1](h).flatten() + projection


def _labels(labels: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if labels is None or labels.shape != like.shape[:1]:
        raise ValueError(
            "a conditional network needs one class label per sample, "
            f"{like.shape[0]} here, not {None if labels is None else tuple(labels.shape)}"
        )
    return labels


class MLPGenerator(nn.Module):
    """The plain GAN's generator (Goodfellow et al. 2014, with ReLU hidden units):
    z -> 256 -> 512 -> C*H*W (tanh)."""

    def __init__(
        self,
        latent_dim: int = 100,
        channels: int = 1,
        image_size: int = 28,
        hidden: tuple[int, int] = (256, 512),
    ) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.main = nn.Sequential(
            nn.Linear(latent_dim, hidden[0]),
            nn.ReLU(True),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(True),
            nn.Linear(hidden[1], channels * image_size * image_size),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: None = None) -> torch.Tensor:
        """``labels``: always None (unconditional), for the DCGAN's call signature."""
        out = self.main(z.reshape(z.shape[0], self.latent_dim))
        return out.view(z.shape[0], self.channels, self.image_size, self.image_size)


class MLPDiscriminator(nn.Module):
    """The plain GAN's discriminator: C*H*W -> 512 -> 256 -> 1 logit, LeakyReLU(0.2)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, hidden: tuple[int, int] = (512, 256)
    ) -> None:
        super().__init__()
        _check_geometry(image_size, channels)
        self.channels, self.image_size = channels, image_size
        self.main = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, hidden[0]),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Linear(hidden[0], hidden[1]),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, x: torch.Tensor, labels: None = None) -> torch.Tensor:
        """``labels``: always None (unconditional), for the DCGAN's call signature."""
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


def build_networks(
    arch: str = "dcgan",
    latent_dim: int = 100,
    channels: int = 1,
    image_size: int = 28,
    *,
    num_classes: int = 0,
    spectral_norm: bool = False,
    d_batch_norm: bool = True,
    minibatch_std: bool = False,
    width: int = DEFAULT_WIDTH,
) -> tuple[nn.Module, nn.Module]:
    """A fresh ``(generator, discriminator)`` pair, initialised from the global torch RNG.

    The plain GAN keeps PyTorch's default initialisation (the N(0, 0.02) recipe is DCGAN's and
    makes an MLP's outputs vanish); the DCGAN gets :func:`dcgan_init`. ``num_classes`` (a
    conditional pair), ``d_batch_norm`` and ``minibatch_std`` are DCGAN options (the MLP's D
    has no BatchNorm to drop);
    ``spectral_norm`` normalises every weight of D (:func:`spectral_norm_all`); ``width`` is
    the DCGAN's channel unit (:data:`DCGAN_LAYOUTS`; the MLP ignores it).
    """
    if arch == "dcgan":
        g = DCGANGenerator(latent_dim, channels, image_size, num_classes, width)
        d = DCGANDiscriminator(
            channels, image_size, num_classes, d_batch_norm, minibatch_std, width
        )
        g.apply(dcgan_init)
        d.apply(dcgan_init)
    elif arch == "gan":
        if num_classes or minibatch_std:
            raise ValueError("conditioning and minibatch std are DCGAN options")
        g, d = (
            MLPGenerator(latent_dim, channels, image_size),
            MLPDiscriminator(channels, image_size),
        )
    else:
        raise ValueError(f"unknown GAN architecture {arch!r}; known: {', '.join(ARCHS)}")
    return g, spectral_norm_all(d) if spectral_norm else d


def network_options(config) -> dict[str, object]:
    """:func:`build_networks`' keyword options for a :class:`GanConfig` (or anything with its
    fields): what a checkpoint's generator and discriminator were built with."""
    return {
        # 0 = the data set's count, which train_gan fills in; 10 when built without data
        "num_classes": (config.num_classes or 10) if config.conditional else 0,
        "spectral_norm": config.spectral_norm,
        "d_batch_norm": config.d_batch_norm,
        "minibatch_std": config.minibatch_std,
        "width": config.width,
    }
