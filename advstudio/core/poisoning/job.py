"""The poisoning lab's jobs: poison the training digits, optionally defend, train a victim on
them, and measure what the poison did.

:func:`run_poisoning` (one run) goes through three phases, each reported with its own
``Progress``:

1. *poison*: build the :class:`~advstudio.core.poisoning.views.PoisonedView` of the 4,000
   training digits (adversarial examples are generated in batches); ``Preview("poisoned",
   images)`` shows up to 16 poisoned samples, float32 (n, 28, 28) in [0, 1], and
   ``Preview("poisoned_labels", labels)`` their (clean, poisoned) labels, int64 (n, 2);
2. *sanitise* (``defence="sanitize"``): :func:`~advstudio.core.poisoning.sanitize.sanitize`
   flags suspects, which are dropped; its ``Metrics(0, {"sanitize_found", ...})`` is forwarded;
3. *train*: the victim is trained by the defence lab's
   :func:`~advstudio.core.defence.train.train_classifier` on the (kept) poisoned samples,
   materialised once into plain tensors, which is what that job takes. Recipe ``"standard"``,
   or ``"fgsm"`` (Goodfellow et al.'s mix at ``adv_train_eps``) for
   ``defence="adversarial-training"``. Its per-step ``Metrics`` and its ``Log``s are forwarded
   unchanged. The victim is measured after every epoch by that job's epoch hook (its own
   held-out evaluation is replaced), in one uninterrupted run that writes no file. After
   each epoch one ``Metrics(step, {epoch, step, train_loss, train_acc, seconds,
   clean_acc[, attack_success]})``.

``clean_acc``: accuracy on the 1,000 clean test digits. ``attack_success``: for a backdoor, the
share of the triggered test digits whose true class is not the target (and is the source, when
one is set) that the victim classifies as the target; for targeted label flips (also of
adversarial examples), the share of the clean test digits of the source class (all classes but
the target when no source) classified as the target; undefined (NaN, and absent from the
``Metrics``) for random flips and clean-label adversarial poison, whose effect is the drop in
``clean_acc``.

:func:`run_fraction_sweep` runs one such job per poison fraction and gives the curve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from advstudio.core import validate as v
from advstudio.core.data import load_digits
from advstudio.core.data.spec import check_dataset
from advstudio.core.defence.defaults import check_arch_data, dataset_geometry
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Event, Log, Metrics, Preview, Progress, in_phase, relay
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields
from advstudio.core.models.names import DIGIT_ARCHITECTURES, GENERIC_ARCHITECTURES
from advstudio.core.poisoning.attacks import (
    ADVERSARIAL_ATTACKS,
    LABEL_MODES,
    NUM_CLASSES,
    adversarial_poison_job,
    attack_success_rate,
    backdoor,
    check_fraction,
    label_flip,
    predict_labels,
    triggered_set,
)
from advstudio.core.poisoning.sanitize import SanitizeConfig, SanitizeReport, sanitize
from advstudio.core.poisoning.triggers import Trigger
from advstudio.core.poisoning.views import PoisonedView, clean_view
from advstudio.core.training import keeping_logs

ATTACKS = ("none", "label-flip", "backdoor", "adversarial")
FLIPS = ("random", "targeted")
DEFENCES = ("none", "sanitize", "adversarial-training")
GALLERY = 16
DRY_RUN_TRAIN, DRY_RUN_TEST = 400, 100
SEQUENTIAL_ARCHITECTURES = (*DIGIT_ARCHITECTURES, *GENERIC_ARCHITECTURES)
"""Victims the sanitiser's reference model can be (its filters read a plain stack's
penultimate layer)."""


@dataclass(frozen=True)
class PoisonConfig:
    """One poisoning experiment, on the bundled digits by default. Plain fields (saved as
    TOML/JSON).

    Attributes
    ----------
    dataset : the data set (:mod:`advstudio.core.data.sets`): ``"digits"`` or any set the
        victim's ``arch`` fits (``defence.defaults.check_arch_data``): at its native shape, in
        colour for a colour architecture (a grey set is resized to 28×28 for the digit
        networks). Trained on its train split, measured on its test split.
    attack : ``"none"`` (clean baseline), ``"label-flip"``, ``"backdoor"`` or ``"adversarial"``.
    fraction : share of the pool to poison, in [0, 1]: the pool is class ``source``, or the
        whole training set (see :mod:`advstudio.core.poisoning.attacks` for the count).
    source : the class whose samples are poisoned, a class of the set; -1 = all classes.
    target : the backdoor's target class, and that of targeted flips, a class of the set.
    flip : label flips (and ``adv_labels="flip"``): ``"random"`` (uniform over the other
        classes) or ``"targeted"`` (all to ``target``).
    trigger_size, trigger_row, trigger_col, trigger_pattern, trigger_value, trigger_custom : the
        backdoor's :class:`~advstudio.core.poisoning.triggers.Trigger` (pixels in [0, 1]).
    adv_attack, adv_eps, adv_steps, adv_labels, adv_model : adversarial poisoning: ``"fgsm"``
        or ``"pgd"`` (``adv_steps`` steps of ``adv_eps / 4``) at L-inf radius ``adv_eps``,
        against the registry model ``adv_model`` (or an in-memory ``nn.Module``, with
        ``adv_card`` its card when it has none); ``adv_labels`` ``"clean"`` (their own
        labels) or ``"flip"`` (per ``flip``).
    defence : ``"none"``, ``"sanitize"`` (drop what the sanitiser flags) or
        ``"adversarial-training"`` (the defence lab's FGSM recipe at ``adv_train_eps``).
    sanitize : the sanitiser's settings, a nested section (``[sanitize]`` in a TOML config):
        its filters, whether the per-sample ones must agree, its loss filter's drop fraction,
        the epochs of its reference model... (see
        :class:`~advstudio.core.poisoning.sanitize.SanitizeConfig`). The reference model's
        ``arch``, ``seed`` and ``device`` are always the victim's (:meth:`sanitize_config`).
    arch, epochs, batch_size, lr, seed, device : the victim's training (``seed`` also seeds
        the poison's choice of samples and the sanitiser). ``arch``: any architecture that
        fits the set (``"small-cnn"``, ``"preact-resnet18"``... for colour), Adam at ``lr``.
        The trigger is stamped in every channel (a white or checkered patch on colour images)
        and must fit the set's images (checked when the job loads a folder).
    dry_run : 400 training and 100 test digits, one training step, no files kept.
    """

    dataset: str = "digits"
    attack: str = "backdoor"
    fraction: float = 0.05
    source: int = -1
    target: int = 0
    flip: str = "random"
    trigger_size: int = 3
    trigger_row: int = 24
    trigger_col: int = 24
    trigger_pattern: str = "square"
    trigger_value: float = 1.0
    trigger_custom: tuple[float, ...] = ()
    adv_attack: str = "fgsm"
    adv_eps: float = 0.1
    adv_steps: int = 10
    adv_labels: str = "clean"
    adv_model: str = "digits-cnn"
    adv_card: ModelCard | None = None
    defence: str = "none"
    sanitize: SanitizeConfig = field(default_factory=SanitizeConfig)
    adv_train_eps: float = 0.1
    arch: str = "digits-cnn"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        check_arch_data(self.arch, self.dataset)
        v.choice("attack", self.attack, ATTACKS)
        check_fraction(self.fraction)
        shape, classes = self.geometry() or (None, None)
        top = (classes or NUM_CLASSES) - 1 if classes or self.arch in DIGIT_ARCHITECTURES else None
        v.whole("source", self.source, -1, top, hint="a class, or -1 for all")
        v.whole("target", self.target, 0, top, hint="a class")
        v.choice("flip", self.flip, FLIPS)
        object.__setattr__(self, "trigger_custom", tuple(self.trigger_custom))
        if self.attack == "backdoor" and shape is not None:
            self.trigger().check_fits(*shape[1:])
        v.choice("adv_attack", self.adv_attack, ADVERSARIAL_ATTACKS)
        v.choice("adv_labels", self.adv_labels, LABEL_MODES)
        for name in ("adv_eps", "adv_train_eps"):
            v.number(name, getattr(self, name), high=1.0, above=0.0, hint="pixel scale")
        v.choice("defence", self.defence, DEFENCES)
        check_model_fields(self, "adv_model", "adv_card")
        if isinstance(self.sanitize, dict):  # a nested section given as plain values
            object.__setattr__(self, "sanitize", SanitizeConfig(**self.sanitize))
        if not isinstance(self.sanitize, SanitizeConfig):
            v.fail("sanitize", "a section of sanitiser settings", self.sanitize)
        for name in ("adv_steps", "epochs", "batch_size"):
            v.whole(name, getattr(self, name), 1)
        v.number("lr", self.lr, above=0)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)

    def geometry(self) -> tuple[tuple[int, int, int], int] | None:
        """The (C, H, W) and class count the victim sees, when known without loading the set:
        the digit networks' 1×28×28 and 10, else the set's known geometry (None: a folder)."""
        if self.arch in DIGIT_ARCHITECTURES:
            return (1, 28, 28), NUM_CLASSES
        return dataset_geometry(self.dataset)

    def trigger(self) -> Trigger:
        return Trigger(
            self.trigger_size,
            self.trigger_row,
            self.trigger_col,
            self.trigger_pattern,
            self.trigger_value,
            self.trigger_custom,
        )

    def sanitize_config(self) -> SanitizeConfig:
        """The sanitiser's settings with the victim's ``arch`` (``small-cnn`` for a victim
        that is not a plain stack of layers, whose features the filters read), ``seed`` and
        ``device``."""
        arch = self.arch if self.arch in SEQUENTIAL_ARCHITECTURES else "small-cnn"
        return replace(self.sanitize, arch=arch, seed=self.seed, device=self.device)

    @property
    def source_class(self) -> int | None:
        return None if self.source < 0 else self.source

    @property
    def targeted(self) -> bool:
        """Whether the poison aims at ``target`` (a backdoor, or targeted flips)."""
        flips = self.attack == "label-flip" or (
            self.attack == "adversarial" and self.adv_labels == "flip"
        )
        return self.attack == "backdoor" or (flips and self.flip == "targeted")


@dataclass
class PoisonResult:
    """What :func:`run_poisoning` returns.

    ``clean_acc`` / ``attack_success``: the victim after its last epoch (see the module doc;
    ``attack_success`` NaN where undefined). ``n_poisoned``: poisoned samples in the training
    set; ``n_train``: samples the victim trained on, ``n_poisoned_trained`` of them poisoned
    (fewer than ``n_poisoned`` after sanitising). ``sanitize``: the sanitiser's report, or None.
    ``history``: one dict per epoch. ``train``: the defence lab's ``TrainResult`` (weights in
    ``train.state_dict``; ``train.classifier()`` rebuilds the victim). ``gallery`` /
    ``gallery_labels``: the poisoned samples shown in the preview. ``seconds``: wall time.
    ``logs``: the text of every ``Log`` the job yielded.
    """

    config: PoisonConfig
    clean_acc: float
    attack_success: float
    n_poisoned: int
    n_train: int
    n_poisoned_trained: int
    sanitize: SanitizeReport | None
    history: list[dict[str, float]]
    train: Any
    gallery: np.ndarray
    gallery_labels: np.ndarray
    seconds: float
    logs: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The headline numbers as floats (for tables, the CLI and the sweep)."""
        out = {
            "fraction": self.config.fraction,
            "clean_acc": self.clean_acc,
            "attack_success": self.attack_success,
            "n_poisoned": float(self.n_poisoned),
            "n_train": float(self.n_train),
            "n_poisoned_trained": float(self.n_poisoned_trained),
            "epochs": float(len(self.history)),
            "seconds": self.seconds,
        }
        if self.sanitize is not None:
            out.update(self.sanitize.as_metrics())
        return out


# ----------------------------------------------------------------------------- pieces


def _digits(config: PoisonConfig) -> tuple[tuple[torch.Tensor, ...], list[str], list[str]]:
    """Training and test images of ``config.dataset`` as the victim takes them (dry run:
    seeded random subsets, every class present), the class names, and the lines that
    describe a non-digit set (skipped files, resizing). :class:`ConfigError` when the source
    or target class, or the trigger, does not fit the loaded set."""
    lines: list[str] = []
    names = [str(i) for i in range(NUM_CLASSES)]
    if config.dataset == "digits":
        (x, y), (xt, yt) = load_digits("train"), load_digits("test")
    else:
        from advstudio.core.defence.common import training_sets

        sets = training_sets(config.dataset, config.arch, None, config.seed)
        (x, y), (xt, yt), lines, names = sets.train, sets.held, sets.lines, sets.class_names
        for name, c in (("source", config.source), ("target", config.target)):
            if c >= len(names):
                raise ConfigError(
                    f"{name} class {c} is not a class of {config.dataset} "
                    f"(classes 0 to {len(names) - 1})"
                )
        if config.attack == "backdoor":
            config.trigger().check_fits(*x.shape[-2:])
    if config.dry_run:
        g = torch.Generator().manual_seed(config.seed)
        keep = torch.randperm(len(x), generator=g)[:DRY_RUN_TRAIN].sort().values
        keep_t = torch.randperm(len(xt), generator=g)[:DRY_RUN_TEST].sort().values
        x, y, xt, yt = x[keep], y[keep], xt[keep_t], yt[keep_t]
    return (x, y, xt, yt), names, lines


def build_view(
    config: PoisonConfig, x: torch.Tensor, y: torch.Tensor, num_classes: int = NUM_CLASSES
) -> Generator[Event, None, PoisonedView]:
    """The poisoned view of ``(x, y)`` (``num_classes`` classes) that ``config`` describes (a
    job: adversarial poison yields ``Progress`` while it is generated)."""
    source, seed = config.source_class, config.seed
    flip_target = config.target if config.flip == "targeted" else None
    if config.attack == "none":
        return clean_view(x, y)
    if config.attack == "label-flip":
        return label_flip(
            x,
            y,
            config.fraction,
            source=source,
            target=flip_target,
            seed=seed,
            num_classes=num_classes,
        )
    if config.attack == "backdoor":
        return backdoor(
            x,
            y,
            config.fraction,
            trigger=config.trigger(),
            target=config.target,
            source=source,
            seed=seed,
            num_classes=num_classes,
        )
    view = yield from adversarial_poison_job(
        x,
        y,
        config.fraction,
        model=config.adv_model,
        card=config.adv_card,
        attack=config.adv_attack,
        eps=config.adv_eps,
        steps=config.adv_steps,
        labels=config.adv_labels,
        target=flip_target if config.adv_labels == "flip" else None,
        source=source,
        seed=seed,
        device=pick_device(config.device),
    )
    return view


def success_set(config: PoisonConfig, xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor | None:
    """The test images whose share classified as ``config.target`` is the attack's success,
    or None where success is undefined (see the module doc)."""
    if not config.targeted:
        return None
    source = config.source_class
    if config.attack == "backdoor":
        return triggered_set(xt, yt, config.trigger(), config.target, source)[0]
    keep = yt != config.target if source is None else yt == source
    return xt[keep]


def evaluate_victim(
    model: torch.nn.Module,
    xt: torch.Tensor,
    yt: torch.Tensor,
    attacked: torch.Tensor | None,
    target: int,
) -> dict[str, float]:
    """``clean_acc`` on ``(xt, yt)`` and, when ``attacked`` is given, ``attack_success``."""
    out = {"clean_acc": float((predict_labels(model, xt) == yt).float().mean())}
    if attacked is not None:
        out["attack_success"] = attack_success_rate(model, attacked, target)
    return out


def train_victim(
    config: PoisonConfig,
    data: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    attacked: torch.Tensor | None,
    class_names: list[str] | None = None,
) -> Generator[Event, None, tuple[Any, list[dict[str, float]]]]:
    """Train the victim on ``data``, evaluating it on ``test`` (and ``attacked``) after each
    epoch through ``train_classifier``'s epoch hook (see the module doc). Returns the
    ``TrainResult`` and the per-epoch history.

    Under ``torchrun`` the processes train it data-parallel: every process trains on rank 0's
    ``data`` (poison made with nondeterministic GPU kernels, or sanitised by them, could differ
    between processes) and measures the victim itself."""
    from advstudio.core.defence.config import TrainConfig
    from advstudio.core.defence.train import train_classifier
    from advstudio.core.distributed import broadcast_object

    recipe = "fgsm" if config.defence == "adversarial-training" else "standard"
    epochs = 1 if config.dry_run else config.epochs
    data = broadcast_object(data)
    train_config = TrainConfig(
        arch=config.arch,
        dataset=config.dataset,
        recipe=recipe,
        eps=config.adv_train_eps,
        epochs=epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed,
        device=config.device,
        eval_images=0,
        dry_run=config.dry_run,
    )

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return evaluate_victim(model, *test, attacked, config.target)

    def victim_progress(event: Event) -> Event:
        if not isinstance(event, Progress):
            return event
        per_epoch = max(1, event.total // epochs)
        epoch = min(epochs, max(1, -(-event.done // per_epoch)))
        return Progress(
            event.done,
            event.total,
            f"training the victim: epoch {epoch} of {epochs}",
            "training the victim",
        )

    result = yield from relay(
        train_classifier(train_config, data, evaluate=evaluate, class_names=class_names),
        victim_progress,
    )
    return result, list(result.history)


# ----------------------------------------------------------------------------- the jobs


def run_poisoning(
    config: PoisonConfig, *, success_of: PoisonConfig | None = None
) -> Generator[Event, None, PoisonResult]:
    """Poison, optionally defend, train the victim, measure (a job; see the module doc).

    ``success_of``: measure ``attack_success`` as for that config instead (the sweep's clean
    baseline uses it: how often a clean victim already "obeys" the trigger is the floor the
    poisoned victims are compared with).

    Raises :class:`ConfigError` (at the first step) when the fraction poisons no sample or
    more samples than are eligible, naming the pool's size and the allowed range.
    """
    if not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # a torchvision set: once, with progress and Cancel
    started = time.perf_counter()
    logs: list[str] = []

    def log(text: str) -> Log:
        logs.append(text)
        return Log(text)

    (x, y, xt, yt), names, data_lines = _digits(config)
    for line in data_lines:
        yield log(line)
    view = yield from relay(build_view(config, x, y, len(names)), in_phase("crafting the poison"))
    gallery, gallery_labels = view.gallery(GALLERY)
    yield log(
        f"{config.attack if config.attack != 'none' else 'no poison'}: {view.n_poisoned} "
        f"of {len(view)} training "
        f"{'digits' if config.dataset == 'digits' else 'images'} poisoned"
        + (" (dry run)" if config.dry_run else "")
    )
    if view.n_poisoned:
        yield Preview("poisoned", gallery)
        yield Preview("poisoned_labels", gallery_labels)
    report = None
    train_view = view
    if config.defence == "sanitize":
        keep, tag = keeping_logs(logs), in_phase("sanitising: training a reference model")
        report = yield from relay(sanitize(view, config.sanitize_config()), lambda e: keep(tag(e)))
        train_view = view.select(report.keep)
    data = train_view.materialize()
    if config.dry_run:  # the dry-run step trains on the first 8: put poisoned samples first
        mask = train_view.poisoned_mask
        order = torch.cat([torch.nonzero(mask).reshape(-1), torch.nonzero(~mask).reshape(-1)])
        data = (data[0][order], data[1][order])
    yield log(
        f"The poisoned set is a view holding {train_view.extra_bytes / 1024:.1f} KB beyond "
        f"the clean digits; the victim's training takes tensors, so it is copied once "
        f"({train_view.materialized_bytes / 2**20:.1f} MB)."
    )
    attacked = success_set(success_of or config, xt, yt)
    train, history = yield from relay(
        train_victim(config, data, (xt, yt), attacked, names), keeping_logs(logs)
    )
    last = history[-1]
    return PoisonResult(
        config=config,
        clean_acc=last["clean_acc"],
        attack_success=last.get("attack_success", math.nan),
        n_poisoned=view.n_poisoned,
        n_train=len(train_view),
        n_poisoned_trained=train_view.n_poisoned,
        sanitize=report,
        history=history,
        train=train,
        gallery=gallery,
        gallery_labels=gallery_labels,
        seconds=time.perf_counter() - started,
        logs=logs,
    )


def _sweep_event(event: Event, prefix: str) -> Event | None:
    """What the sweep forwards of one run: its ``Log``s, and its ``Progress`` prefixed."""
    if isinstance(event, Log):
        return event
    if isinstance(event, Progress):
        return Progress(event.done, event.total, prefix + event.message, prefix + event.phase)
    return None


@dataclass
class PoisonCurve:
    """A fraction sweep: per fraction (in the order run) the victim's clean accuracy, the
    attack's success (NaN where undefined) and the full :class:`PoisonResult`. ``partial``
    until the last fraction is done."""

    config: PoisonConfig
    fractions: list[float] = field(default_factory=list)
    clean_acc: list[float] = field(default_factory=list)
    attack_success: list[float] = field(default_factory=list)
    results: list[PoisonResult] = field(default_factory=list)
    partial: bool = True

    def snapshot(self) -> PoisonCurve:
        """A copy of the curve without the results (cheap, for previews)."""
        return PoisonCurve(
            self.config,
            list(self.fractions),
            list(self.clean_acc),
            list(self.attack_success),
            [],
            self.partial,
        )


def run_fraction_sweep(
    config: PoisonConfig, fractions: Sequence[float]
) -> Generator[Event, None, PoisonCurve]:
    """:func:`run_poisoning` once per fraction (a job). Fraction 0 is the clean baseline
    (``attack="none"``, with the same defence and training).

    The clean baseline's ``attack_success`` is measured as for ``config``'s attack.
    Forwards each run's ``Log``s and its ``Progress`` (prefixed "fraction f: "); after each
    run ``Metrics(i, {"fraction", "clean_acc"[, "attack_success"], "n_poisoned"})`` and
    ``Preview("poison_curve", PoisonCurve snapshot)``. Returns the :class:`PoisonCurve`.
    """
    fractions = [check_fraction(f) for f in fractions]
    if not fractions:
        raise ConfigError("choose at least one fraction")
    curve = PoisonCurve(config)
    for i, fraction in enumerate(fractions):
        run_config = (
            replace(config, fraction=fraction)
            if fraction > 0
            else replace(config, attack="none", fraction=0.0)
        )
        prefix = f"fraction {fraction:g} ({i + 1} of {len(fractions)}): "
        result = yield from relay(
            run_poisoning(run_config, success_of=config),
            lambda e, prefix=prefix: _sweep_event(e, prefix),
        )
        curve.fractions.append(fraction)
        curve.clean_acc.append(result.clean_acc)
        curve.attack_success.append(result.attack_success)
        curve.results.append(result)
        point = {
            "fraction": fraction,
            "clean_acc": result.clean_acc,
            "n_poisoned": float(result.n_poisoned),
        }
        if not math.isnan(result.attack_success):
            point["attack_success"] = result.attack_success
        yield Metrics(i, point)
        curve.partial = i + 1 < len(fractions)
        yield Preview("poison_curve", curve.snapshot())
    return curve
