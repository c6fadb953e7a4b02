"""The defence jobs' configurations: frozen dataclasses of plain fields (no torch import, so the
UI can build and validate them cheaply), checked when built so a bad value fails at once with a
message naming it and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass

from advstudio.core import validate as v
from advstudio.core.data.spec import check_dataset
from advstudio.core.errors import ConfigError
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

ARCHS = ("digits-cnn", "digits-mlp")  # = models.architectures.ARCHITECTURES (a test checks)
RECIPES = ("standard", "fgsm", "fgsm-rs", "pgd", "noise", "ibp", "trades")
NO_EPS_RECIPES = ("standard", "noise")  # recipes that never attack: eps only for the evaluation
COHEN_SIGMAS = (0.12, 0.25, 0.5, 1.0)  # the noise levels of Cohen et al. 2019 (pixel scale)
DETECTOR_ATTACKS = ("fgsm", "pgd")


def _common(config: object) -> None:
    """The fields every training config has: arch, lr, seed, device, max_loss, the files."""
    v.choice("arch", getattr(config, "arch", ARCHS[0]), ARCHS, "the network architecture")
    v.number("lr", config.lr, above=0)
    v.whole("seed", config.seed)
    v.device(config.device)
    v.number("max_loss", getattr(config, "max_loss", 1.0), above=0)
    for name in ("checkpoint_path", "save_path"):
        v.text(name, getattr(config, name, ""))
    for name in ("resume", "dry_run"):
        v.flag(name, getattr(config, name, False))
    if getattr(config, "resume", False) and not config.checkpoint_path:
        raise ConfigError("resume needs a checkpoint_path to resume from")


def check_vat_args(xi: float, eps: float, power_iterations: int) -> None:
    """VAT's settings: ``xi`` > 0 and ``eps`` >= 0 (L2 lengths over all pixels), at least one
    power iteration."""
    v.number("xi", xi, above=0, hint="an L2 length over all pixels")
    v.number("eps", eps, 0, hint="an L2 radius over all pixels")
    v.whole("power_iterations", power_iterations, 1)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one classifier training run (``defence.train.train_classifier``).

    Attributes
    ----------
    arch : ``"digits-cnn"`` or ``"digits-mlp"`` (``models.architectures.ARCHITECTURES``).
    recipe : ``"standard"``, ``"fgsm"``, ``"fgsm-rs"``, ``"pgd"``, ``"noise"``, ``"ibp"`` or
        ``"trades"`` (see ``defence.train``).
    dataset : ``"digits"`` (the bundled digits) or any grey set of the shared choice
        (:mod:`advstudio.core.data.sets`: ``"folder:<path>"``, ``"torchvision:mnist"``,
        ``"torchvision:fashion-mnist"``...), at most 10 classes, resized to 28×28 when needed;
        trained on its train split, evaluated on ``eval_images`` of its test split. A colour
        set is refused when the job starts: the digit architectures take 1×28×28 grey.
    eps : L-inf radius of the training attacks and of the evaluation, pixel scale [0, 1].
    alpha_mix : weight of the clean loss in the ``"fgsm"`` recipe, in [0, 1].
    pgd_steps : PGD steps of the ``"pgd"`` recipe and of TRADES' inner maximisation (step
        ``eps / 4`` both, so the two cost the same per step).
    sigma : standard deviation of the ``"noise"`` recipe's Gaussian augmentation, pixel scale
        (Cohen et al. train at 0.12, 0.25, 0.5 or 1.0 and certify at the same sigma).
    trades_beta : weight of TRADES' KL term (Zhang et al.: 6 on MNIST; 0 = plain training).
    ibp_kappa, ibp_warmup_steps, ibp_ramp_steps : the ``"ibp"`` schedule
        (``certify.ibp.ibp_schedule``), in optimiser steps: plain training for the warm-up,
        then eps ramps 0 -> ``eps`` and kappa 1 -> ``ibp_kappa``. Gowal et al.'s MNIST run:
        2,000 and 10,000 steps of 60,000 / 100 images (3 and 17 epochs of 100); the defaults
        here are 1 and 3 epochs of the 4,000 digits at batch 64 (62 steps an epoch), for a
        short 5-epoch run.
    epochs, batch_size, lr : passes over the data, images per step (clean ones; the ``"fgsm"``
        mix adds as many adversarial ones; under ``torchrun`` the global batch, shared among
        the processes), Adam's learning rate.
    seed : seeds the initial weights, the data order, random starts and dropout masks.
    device : ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    eval_images : held-out test digits for the evaluation, a seeded random subset (0 = no
        evaluation).
    eval_pgd_steps : steps of the evaluation's PGD (step ``eps / 10``).
    eval_every : evaluate every this many epochs (and always after the last).
    max_loss : a loss above this, or any NaN/infinity, stops the run as diverged.
    checkpoint_path : written atomically after every epoch ("" = none); ``resume`` continues
        from it when it exists.
    save_path : where the trained network's ``state_dict`` goes (atomically) at the end; the
        file loads with ``registry.load_user_model`` / the model key ``file:<path>``.
    dry_run : one step on 8 images (random pixels unless ``data`` is given), a tiny
        evaluation, no files written.
    """

    arch: str = "digits-cnn"
    recipe: str = "standard"
    dataset: str = "digits"
    eps: float = 0.1
    alpha_mix: float = 0.5
    pgd_steps: int = 7
    sigma: float = 0.25
    trades_beta: float = 6.0
    ibp_kappa: float = 0.5
    ibp_warmup_steps: int = 60
    ibp_ramp_steps: int = 180
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    eval_images: int = 1000
    eval_pgd_steps: int = 20
    eval_every: int = 1
    max_loss: float = 1000.0
    checkpoint_path: str = ""
    resume: bool = False
    save_path: str = ""
    dry_run: bool = False

    def __post_init__(self) -> None:
        _common(self)
        v.choice("recipe", self.recipe, RECIPES, "the training recipe")
        check_dataset(self.dataset)
        v.number("eps", self.eps, 0.0, 1.0, hint="pixel scale")
        if self.recipe not in NO_EPS_RECIPES:
            v.number(
                "eps",
                self.eps,
                high=1.0,
                above=0.0,
                hint=f"the {self.recipe!r} recipe's attack radius, pixel scale",
            )
        v.number("alpha_mix", self.alpha_mix, 0.0, 1.0, hint="weight of the clean loss")
        v.number(
            "sigma",
            self.sigma,
            high=4.0,
            above=0.0,
            hint=f"pixel scale; Cohen et al. use {', '.join(map(str, COHEN_SIGMAS))}",
        )
        v.number("trades_beta", self.trades_beta, 0.0, hint="weight of the KL term (paper: 6)")
        v.number("ibp_kappa", self.ibp_kappa, 0.0, 1.0, hint="final weight of the clean loss")
        for name, low in (
            ("ibp_warmup_steps", 0),
            ("ibp_ramp_steps", 0),
            ("pgd_steps", 1),
            ("epochs", 1),
            ("batch_size", 1),
            ("eval_images", 0),
            ("eval_pgd_steps", 1),
            ("eval_every", 1),
        ):
            v.whole(name, getattr(self, name), low)


@dataclass(frozen=True)
class VatConfig:
    """Settings of a semi-supervised VAT run (``defence.vat.train_vat``).

    Attributes
    ----------
    arch : ``"digits-cnn"`` or ``"digits-mlp"``.
    dataset : as in :class:`TrainConfig` (any grey set, at most 10 classes).
    labels_per_class : labelled training images per class (10 -> 100 labels); a seeded,
        stratified choice. The other training images are the unlabelled pool.
    labelled_batch, unlabelled_batch : images per step from each (32 and 128); under
        ``torchrun`` the global batches, shared among the processes.
    steps, lr : Adam steps and learning rate.
    xi, eps, power_iterations : of ``vat.vat_loss`` (L2 over all pixels of [0, 1] images).
    alpha : weight of the LDS term; ``entropy_min`` adds the conditional entropy of the
        unlabelled predictions (VAT + EntMin in the paper).
    supervised_only : the baseline: the same labelled subset and steps, no unlabelled term.
    eval_every : test accuracy every this many steps (also at 0 and at the end).
    eval_images : held-out test digits for it (a seeded random subset; 0 = no evaluation).
    checkpoint_path, checkpoint_every, resume, save_path, max_loss, seed, device : as in
        :class:`TrainConfig` (checkpoints every this many steps).
    dry_run : one step on 40 random-pixel images (2 labels per class), no files written.
    """

    arch: str = "digits-cnn"
    dataset: str = "digits"
    labels_per_class: int = 10
    labelled_batch: int = 32
    unlabelled_batch: int = 128
    steps: int = 1500
    lr: float = 1e-3
    xi: float = 1e-6
    eps: float = 2.0
    power_iterations: int = 1
    alpha: float = 1.0
    entropy_min: bool = False
    supervised_only: bool = False
    eval_every: int = 100
    eval_images: int = 1000
    seed: int = 0
    device: str = "auto"
    max_loss: float = 1000.0
    checkpoint_path: str = ""
    checkpoint_every: int = 100
    resume: bool = False
    save_path: str = ""
    dry_run: bool = False

    def __post_init__(self) -> None:
        _common(self)
        for name, low in (
            ("labels_per_class", 1),
            ("labelled_batch", 1),
            ("unlabelled_batch", 1),
            ("steps", 1),
            ("eval_every", 1),
            ("eval_images", 0),
            ("checkpoint_every", 1),
        ):
            v.whole(name, getattr(self, name), low)
        check_vat_args(self.xi, self.eps, self.power_iterations)
        v.number("alpha", self.alpha, 0, hint="weight of the LDS term")
        v.flag("entropy_min", self.entropy_min)
        v.flag("supervised_only", self.supervised_only)
        check_dataset(self.dataset)


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of a detector training run (``defence.detector.train_detector``).

    Attributes
    ----------
    target : registry key of the classifier to guard (``"digits-cnn"``, ``"file:/path.pt"``), or
        an in-memory ``nn.Module``; ``target_card``: its card when it has none.
    dataset : as in :class:`TrainConfig` (any grey set, resized to the 1×28×28 the detector
        and its target take).
    attacks : ``"fgsm"`` and/or ``"pgd"``; training images are split evenly among them.
    eps : L-inf radius of the attacks, pixel scale [0, 1].
    pgd_steps : PGD steps (step ``eps / 4``, random start).
    train_images : training digits, a seeded random subset (each used clean and attacked).
    test_images : held-out test digits for the figures, a seeded random subset, each used
        clean and attacked by every attack. Both are capped at the data's size.
    epochs, batch_size, lr : the detector's training (Adam); a batch holds ``batch_size`` clean
        images and their ``batch_size`` adversarial twins.
    threshold : probability of "adversarial" at which an input is rejected.
    seed, device : as usual. ``save_path``: the detector's ``state_dict`` (atomic) at the end.
    dry_run : 16 random-pixel images, one step, no file written.
    """

    target: str = "digits-cnn"
    target_card: ModelCard | None = None
    dataset: str = "digits"
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: float = 0.1
    pgd_steps: int = 10
    train_images: int = 4000
    test_images: int = 1000
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    threshold: float = 0.5
    seed: int = 0
    device: str = "auto"
    save_path: str = ""
    dry_run: bool = False

    def __post_init__(self) -> None:
        _common(self)
        object.__setattr__(self, "attacks", v.choices("attacks", self.attacks, DETECTOR_ATTACKS))
        v.number("eps", self.eps, high=1.0, above=0.0, hint="pixel scale")
        for name in ("pgd_steps", "train_images", "test_images", "epochs", "batch_size"):
            v.whole(name, getattr(self, name), 1)
        v.number("threshold", self.threshold, 0.0, 1.0, hint="a probability")
        check_model_fields(self, "target", "target_card")
        check_dataset(self.dataset)
