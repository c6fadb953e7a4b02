"""The GAN training job's configuration: a frozen dataclass of plain fields (no torch import),
checked when it is built so a bad value fails at once with a message naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from advstudio.core.errors import ConfigError

ARCHS = ("dcgan", "gan")
IMAGE_SIZES = (28, 32, 64)
CHANNELS = (1, 3)
BUILTIN_DATASETS = ("digits",)


@dataclass(frozen=True)
class GanConfig:
    """Settings of one GAN training run (:func:`advstudio.core.gan.train.train_gan`).

    Attributes
    ----------
    arch : ``"dcgan"`` (Radford et al.) or ``"gan"`` (MLP generator and discriminator).
    dataset : ``"digits"`` (the bundled 4,000 training digits), ``"folder:<path>"`` (every image
        under a folder, centre-cropped, resized and converted; unreadable files skipped) or, when
        the caller passes the
        images itself (``train_gan(config, data=...)``), any label for them (e.g. ``"cifar10"``).
    image_size, channels : geometry of the images, 28/32/64 pixels, 1 or 3 channels. The digits
        are resized and their channel repeated when asked for other than 28 px / 1 channel.
    latent_dim : length of the noise vector z ~ N(0, I).
    batch_size, steps : real images per discriminator step (under ``torchrun`` the global
        batch, shared among the processes); number of generator steps.
    lr_g, lr_d, beta1 : Adam settings (beta2 is 0.999), Radford et al.: 2e-4 and 0.5.
    d_steps : discriminator updates per generator update, each on a fresh real batch.
    label_smoothing : one-sided: real images get the target ``1 - label_smoothing`` (0.1 -> 0.9).
    seed : seeds the networks' initialisation, the fixed preview noise, the noise of every step
        and the order of the data.
    device : ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    eval_every : judge 1,000 samples with the built-in digit CNN (classes covered, class
        entropy, Fréchet distance) every this many steps, at the start and at the end;
        0 = never. Digits only.
    checkpoint_path, checkpoint_every : where and how often (steps) to save a checkpoint (also
        at the end); empty path = no checkpoints.
    resume : continue from ``checkpoint_path`` if it exists.
    max_loss : a loss above this (or not finite) stops the run as diverged.
    preview_rate : sample-grid previews per second at most (0 = only the final one).
    dry_run : one tiny step on random fake data (no data loading, evaluation or checkpoint).
    """

    arch: str = "dcgan"
    dataset: str = "digits"
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 100
    batch_size: int = 64
    steps: int = 2000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    d_steps: int = 1
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 200
    checkpoint_path: str = ""
    checkpoint_every: int = 200
    resume: bool = False
    max_loss: float = 1000.0
    preview_rate: float = 2.0
    dry_run: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.arch in ARCHS,
             f"unknown GAN architecture {self.arch!r}; allowed: {', '.join(ARCHS)}")
        need(self.image_size in IMAGE_SIZES,
             f"image_size {self.image_size} is not supported; allowed: "
             f"{', '.join(map(str, IMAGE_SIZES))} pixels")
        need(self.channels in CHANNELS,
             f"channels {self.channels} is not supported; allowed: 1 (grey) or 3 (colour)")
        need(isinstance(self.latent_dim, int) and self.latent_dim >= 1,
             f"latent_dim must be an integer >= 1, not {self.latent_dim!r}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, not {self.batch_size!r}")
        need(isinstance(self.steps, int) and self.steps >= 1,
             f"steps must be an integer >= 1, not {self.steps!r}")
        for name in ("lr_g", "lr_d"):
            lr = getattr(self, name)
            need(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                 f"{name} must be a finite number > 0, not {lr!r}")
        need(0.0 <= self.beta1 < 1.0, f"beta1 must be in [0, 1), not {self.beta1!r}")
        need(isinstance(self.d_steps, int) and self.d_steps >= 1,
             f"d_steps must be an integer >= 1, not {self.d_steps!r}")
        need(0.0 <= self.label_smoothing < 0.5,
             f"label_smoothing must be in [0, 0.5), not {self.label_smoothing!r} "
             "(0.1 gives real images the target 0.9)")
        need(isinstance(self.eval_every, int) and self.eval_every >= 0,
             f"eval_every must be an integer >= 0 (0 = never), not {self.eval_every!r}")
        need(isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0,
             f"checkpoint_every must be an integer >= 0 (0 = only at the end), "
             f"not {self.checkpoint_every!r}")
        need(not self.resume or bool(self.checkpoint_path),
             "resume needs a checkpoint_path to resume from")
        need(self.max_loss > 0, f"max_loss must be > 0, not {self.max_loss!r}")
        need(self.preview_rate >= 0, f"preview_rate must be >= 0, not {self.preview_rate!r}")
        need(bool(self.dataset), "dataset must be named ('digits' or a label for your images)")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)
