"""The GAN training job's configuration: a frozen dataclass of plain fields (no torch import),
checked when it is built so a bad value fails at once with a message naming it."""

from __future__ import annotations

from dataclasses import dataclass

from advstudio.core import validate as v
from advstudio.core.data.spec import check_fit
from advstudio.core.errors import ConfigError
from advstudio.core.models.card import ModelCard

ARCHS = ("dcgan", "gan")
IMAGE_SIZES = (28, 32, 64)
CHANNELS = (1, 3)
BUILTIN_DATASETS = ("digits",)
# the names of advstudio.core.playground.losses (kept here so building a config imports no torch;
# tests/core/test_gan_losses.py checks the two agree)
LOSSES = ("minimax", "non-saturating", "least-squares", "hinge", "wgan-gp")
BCE_LOSSES = ("minimax", "non-saturating")
# the GAN tab's training length by device: the default DCGAN (width 32, lr 8e-4) covers all
# ten digits with a Fréchet distance under 400 in 900-1,000 steps, about 100 s on a 2-core CPU
# (README, "GAN losses and stabilisers"); 1,200 leave a margin (a slow test checks it); a GPU
# does GanConfig's 2,000 in about a minute
DEFAULT_STEPS_CPU = 1200


@dataclass(frozen=True)
class GanConfig:
    """Settings of one GAN training run (:func:`advstudio.core.gan.train.train_gan`).

    Attributes
    ----------
    arch : ``"dcgan"`` (Radford et al.) or ``"gan"`` (MLP generator and discriminator).
    dataset : the one data-set choice of every lab (:mod:`advstudio.core.data.sets`):
        ``"digits"`` (the bundled 4,000 training digits), ``"folder:<path>"`` (an ImageFolder or
        a labels.csv folder, its train split; a flat folder of unlabelled images is read whole),
        ``"torchvision:<name>"`` (e.g. ``cifar10``, its train split), ``"imagenet-folder:<path>"``;
        or, when the caller passes the images itself (``train_gan(config, data=...)``), any
        label for them.
    image_size, channels : geometry of the generated images, 28/32/64 pixels, 1 or 3 channels.
    fit : how images of another shape are made to that geometry (:mod:`advstudio.core.data.fit`):
        ``"center-crop"`` (the largest centred square, then resized; channels converted),
        ``"resize"``, or ``"none"`` (refuse images of another shape). The log says what was done.
    max_images : read at most this many training images (a seeded random subset); 0 = all.
    judge : the classifier whose reading gives classes covered, class entropy and the Fréchet
        distance (:mod:`advstudio.core.gan.judge`): ``"auto"`` (the digit CNN for digits and
        MNIST, else none), ``"none"``, or a registry key of a classifier of the data set's
        classes (e.g. ``"file:/models/cifar.pt2"``, ``"memory:<name>"``), or the module itself
        (registered, :mod:`advstudio.core.models.fields`).
    judge_card : the judge's model card (a :class:`~advstudio.core.models.card.ModelCard` or
        its fields as a dict) for a ``file:`` judge without a card beside it; None otherwise.
    latent_dim : length of the noise vector z ~ N(0, I).
    width : the DCGAN's channel unit (pytorch/examples' ngf / ndf): at 28 px G's hidden layers
        have 4 and 2 times it (32: 128 and 64 channels), D mirrors them. Radford et al. use 64;
        32 with the learning rates below is the measured fast default (README, "GAN losses and
        stabilisers": all ten digits and a Fréchet distance under 400 in about 1,000 steps,
        under 2 minutes on a 2-core CPU, where width 64 at 2e-4 needs about 1,800 steps at
        three times the cost per step).
    batch_size, steps : real images per discriminator step (under ``torchrun`` the global
        batch, shared among the processes); number of generator steps.
    lr_g, lr_d, beta1 : Adam settings (beta2 is 0.999); Radford et al.: 2e-4 and 0.5. The
        default 8e-4 for both was measured against 4e-4 and 6e-4 at width 32 (faster to a
        Fréchet distance under 400 on the digits, over 3 seeds); the GAN tab's presets offer
        Radford et al.'s rates and TTUR's.
    d_steps : discriminator updates per generator update, each on a fresh real batch.
    label_smoothing : one-sided: real images get the target ``1 - label_smoothing`` (0.1 -> 0.9);
        BCE losses only.
    loss : one of :data:`LOSSES`, the formulas of :mod:`advstudio.core.playground.losses`
        (shared with the 2-D playground): ``"minimax"``, ``"non-saturating"`` (BCE, G minimises
        -log D(G(z))), ``"least-squares"`` (LSGAN), ``"hinge"``, ``"wgan-gp"`` (``d_steps``
        critic steps per G step; Gulrajani et al. use 5).
    gp_weight : WGAN-GP's penalty weight lambda (Gulrajani et al.: 10).
    spectral_norm : spectral normalisation of every weight of D.
    r1_gamma : weight gamma of the R1 penalty gamma/2 |grad D(x)|^2 on real images; 0 = off.
    ema_decay : decay of the moving average of G's weights that samples, previews,
        evaluations and the result use; 0 = off (0.999 averages over ~1,000 steps).
    minibatch_std : a minibatch-standard-deviation feature map in D (DCGAN only).
    conditional : a class-conditional DCGAN (labels into G and a projection D); needs labelled
        data (the digits, or ``labels`` given to ``train_gan``).
    num_classes : number of classes of a conditional GAN; 0 = the data set's (10 for images
        passed with labels).
    seed : seeds the networks' initialisation, the fixed preview noise, the noise of every step
        and the order of the data.
    device : ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    eval_every : judge 1,000 samples with the judge (classes covered, class
        entropy, Fréchet distance) every this many steps, at the start and at the end;
        0 = never. Needs a judge.
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
    fit: str = "center-crop"
    max_images: int = 0
    judge: str = "auto"
    judge_card: ModelCard | None = None
    latent_dim: int = 100
    width: int = 32
    batch_size: int = 64
    steps: int = 2000
    lr_g: float = 8e-4
    lr_d: float = 8e-4
    beta1: float = 0.5
    d_steps: int = 1
    label_smoothing: float = 0.0
    loss: str = "non-saturating"
    gp_weight: float = 10.0
    spectral_norm: bool = False
    r1_gamma: float = 0.0
    ema_decay: float = 0.0
    minibatch_std: bool = False
    conditional: bool = False
    num_classes: int = 0
    seed: int = 0
    device: str = "auto"
    eval_every: int = 200
    checkpoint_path: str = ""
    checkpoint_every: int = 200
    resume: bool = False
    max_loss: float = 1000.0
    preview_rate: float = 2.0
    dry_run: bool = False

    def __post_init__(self) -> None:
        v.choice("arch", self.arch, ARCHS, "the GAN architecture")
        if self.image_size not in IMAGE_SIZES:
            v.fail(
                "image_size", f"one of {', '.join(map(str, IMAGE_SIZES))} pixels", self.image_size
            )
        if self.channels not in CHANNELS or isinstance(self.channels, bool):
            v.fail("channels", "1 (grey) or 3 (colour)", self.channels)
        v.whole("latent_dim", self.latent_dim, 1)
        v.whole("width", self.width, 4, 512)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("steps", self.steps, 1)
        v.number("lr_g", self.lr_g, above=0)
        v.number("lr_d", self.lr_d, above=0)
        v.number("beta1", self.beta1, 0.0, below=1.0)
        v.whole("d_steps", self.d_steps, 1)
        v.number(
            "label_smoothing",
            self.label_smoothing,
            0.0,
            below=0.5,
            hint="0.1 gives real images the target 0.9",
        )
        v.choice("loss", self.loss, LOSSES, "the GAN loss")
        if self.label_smoothing and self.loss not in BCE_LOSSES:
            v.fail(
                "label_smoothing",
                "0 for a loss other than minimax or non-saturating "
                "(only BCE has a probability target to smooth)",
                self.label_smoothing,
            )
        v.number("gp_weight", self.gp_weight, 0.0, 1000.0)
        v.flag("spectral_norm", self.spectral_norm)
        v.number("r1_gamma", self.r1_gamma, 0.0, 1000.0, hint="0 = off")
        v.number("ema_decay", self.ema_decay, 0.0, below=1.0, hint="0 = off, e.g. 0.999")
        v.flag("minibatch_std", self.minibatch_std)
        v.flag("conditional", self.conditional)
        if self.num_classes != 0:
            v.whole("num_classes", self.num_classes, 2, hint="0 = the data set's")
        if self.arch != "dcgan":
            for name in ("minibatch_std", "conditional"):
                if getattr(self, name):
                    v.fail(name, "False for the plain GAN (a DCGAN option)", True)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.whole("eval_every", self.eval_every, 0, hint="0 = never")
        v.text("checkpoint_path", self.checkpoint_path)
        v.whole("checkpoint_every", self.checkpoint_every, 0, hint="0 = only at the end")
        v.flag("resume", self.resume)
        if self.resume and not self.checkpoint_path:
            raise ConfigError("resume needs a checkpoint_path to resume from")
        v.number("max_loss", self.max_loss, above=0)
        v.number("preview_rate", self.preview_rate, 0.0)
        v.flag("dry_run", self.dry_run)
        v.text("dataset", self.dataset, empty=False, hint="'digits' or a label for your images")
        check_fit(self.fit)
        v.whole("max_images", self.max_images, 0, hint="0 = all")
        if self.judge in ("auto", "none") and self.judge_card is None:
            return  # no model: nothing to import (a default config stays torch-free)
        from advstudio.core.models.fields import check_model_fields

        check_model_fields(self, "judge", "judge_card")

    @property
    def d_batch_norm(self) -> bool:
        """BatchNorm in D unless the loss is WGAN-GP (its penalty is per sample; Gulrajani et
        al. drop it) or spectral normalisation replaces it (Miyato et al.). The plain GAN's D
        has no BatchNorm in any case."""
        return self.loss != "wgan-gp" and not self.spectral_norm

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)
