"""Robust accuracy in one click, in the spirit of AutoAttack (Croce & Hein 2020): an ordered
ensemble of parameter-free attacks, each run only on the images that survived the ones before.

An image counts as robust when the model classifies it right clean *and* under every attack of
the ensemble (each perturbation projected onto the L-inf eps-ball and [0, 1] before it is
judged, so a faulty attack cannot overcount). The result also names, per image, the first
attack that broke it, and gives the accuracy under FGSM alone at the same eps: the number a
quick evaluation would have reported, next to the one a careful evaluation does.

- :func:`robust_accuracy`: any in-memory classifier and images (the Defence tab's check of a
  freshly trained model);
- :func:`run_robust`: the job (``advstudio-run`` kind ``robust``) on a registry model and any
  data set (default the bundled test digits), with progress and a running robust accuracy.

Two ensembles (:data:`ENSEMBLES`, the config's ``ensemble``):

- ``standard``: AutoAttack's standard version: APGD-CE, APGD-T (targeted DLR over the 9 most
  likely wrong classes), FAB-T (minimal L-inf, projected onto the eps-ball), Square (5,000
  queries, ``p_init`` 0.8 as AutoAttack runs it on MNIST). Per image the first that succeeds:
  the per-sample worst case over the four.
- ``fast``: APGD-CE, APGD-T, then SPSA, a gradient-free attack with a smaller query budget.

Before the attacks, AutoAttack's checks (:mod:`~advstudio.core.attacks.checks`) run on the first
batch and after them the gradient-masking one; their findings come as ``Log`` events and in
``RobustResult.warnings``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advstudio.core import distributed
from advstudio.core import validate as v
from advstudio.core.attacks import catalogue, checks
from advstudio.core.attacks.autopgd import apgd
from advstudio.core.attacks.blackbox import as_predict
from advstudio.core.attacks.fab import fab_t
from advstudio.core.attacks.square import square_linf
from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    check_eps,
    check_images,
    check_steps,
    eval_mode,
    fgsm,
    project,
)
from advstudio.core.data.fields import check_fields
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Log, Metrics, Progress, drive
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

DRY_RUN_IMAGES = 8
ENSEMBLES = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "fast": ("apgd-ce", "apgd-t", "spsa"),
}
"""AutoAttack's standard ensemble, and the faster one of earlier versions."""
DEFAULT_ATTACKS = ENSEMBLES["fast"]
GRADIENT_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "pgd", "fgsm")
QUERY_ATTACKS = ("square", "spsa", "simba", "nes")
SQUARE_P_INIT = 0.8  # AutoAttack's Square on MNIST
ROBUST = "robust"
MISCLASSIFIED = "misclassified"


@dataclass(frozen=True)
class Budget:
    """The ensemble's settings: ``steps`` per APGD run (and PGD), ``target_classes`` for APGD-T,
    ``max_queries`` per image for the catalogue's query attacks (SPSA...), ``square_queries``
    for the ensemble's Square (AutoAttack's 5,000), ``seed`` for every random start."""

    steps: int = 100
    target_classes: int = 9
    max_queries: int = 1000
    seed: int = 0
    square_queries: int = 5000


# name -> attack(model, x, y, eps, budget, batch_seed) -> x_adv in [0, 1]
RobustAttack = Callable[[nn.Module, torch.Tensor, torch.Tensor, float, Budget, int], torch.Tensor]


def _apgd_t(m, x, y, e, b, s):
    classes = _classes(m, x)
    return apgd(
        m,
        x,
        y,
        eps=e,
        steps=b.steps,
        loss="dlr" if classes >= 4 else "ce",
        targeted=True,
        target_classes=min(b.target_classes, classes - 1),
        seed=s,
    )


def _fab_t(m, x, y, e, b, s):
    return fab_t(
        m,
        x,
        y,
        norm="Linf",
        steps=b.steps,
        target_classes=min(b.target_classes, _classes(m, x) - 1),
    )


def _square(m, x, y, e, b, s):
    return square_linf(
        as_predict(m),
        x,
        y,
        e,
        max_queries=b.square_queries,
        p_init=SQUARE_P_INIT,
        generator=_generator(s),
    ).x_adv


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ROBUST_ATTACKS: dict[str, RobustAttack] = {
    "apgd-ce": lambda m, x, y, e, b, s: apgd(m, x, y, eps=e, steps=b.steps, loss="ce", seed=s),
    "apgd-dlr": lambda m, x, y, e, b, s: apgd(m, x, y, eps=e, steps=b.steps, loss="dlr", seed=s),
    "apgd-t": _apgd_t,
    "fab-t": _fab_t,
    "square": _square,
}
"""The ensemble's own recipes (AutoAttack's APGD variants); the catalogue's attacks offered in
the ``robust`` context (PGD, FGSM, SPSA, SimBA...) come after them, see :func:`robust_attack`."""
ATTACK_LABELS = {
    "apgd-ce": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "apgd-t": "APGD-T (targeted DLR)",
    "fab-t": "FAB-T",
    "square": "Square (query-based)",
}


def attack_names() -> tuple[str, ...]:
    """Every name the ensemble may use: its own recipes, then the catalogue's robust attacks."""
    return (
        *ROBUST_ATTACKS,
        *(n for n in catalogue.names(context="robust") if n not in ROBUST_ATTACKS),
    )


def attack_label(name: str) -> str:
    """How the robust evaluation names an attack in its progress and table."""
    if name in ATTACK_LABELS:
        return ATTACK_LABELS[name]
    if name in catalogue.names(context="robust"):
        return catalogue.get(name).label("robust")
    return name


def robust_attack(name: str) -> RobustAttack:
    """The ``(model, x, y, eps, budget, seed)`` function of ``name``. A catalogue attack gets
    the budget's ``steps`` and ``max_queries`` where it takes them, a step size of
    ``2.5 eps / steps`` (Madry et al.'s rule for a fixed number of steps) and a generator
    seeded with ``seed``."""
    if name in ROBUST_ATTACKS:
        return ROBUST_ATTACKS[name]
    entry = catalogue.get(name)

    def run(
        m: nn.Module, x: torch.Tensor, y: torch.Tensor, e: float, b: Budget, s: int
    ) -> torch.Tensor:
        values = {"eps": e, "steps": b.steps, "max_queries": b.max_queries}
        if entry.has("alpha"):
            values["alpha"] = 2.5 * e / b.steps
        params = entry.resolve(values, "robust")
        return entry.run(m, x, y, params, generator=_generator(s), seed=s).x_adv

    return run


def _classes(model: nn.Module, x: torch.Tensor) -> int:
    with eval_mode(model), torch.no_grad():
        return int(model(x[:1]).shape[1])


def check_attacks(attacks: Sequence[str]) -> tuple[str, ...]:
    attacks = tuple(attacks)
    known = attack_names()
    if not attacks:
        raise ConfigError(f"choose at least one attack; allowed: {', '.join(known)}")
    for name in attacks:
        if name not in known:
            raise ConfigError(
                f"unknown attack {name!r}; the robust evaluation knows {', '.join(known)}"
            )
    if len(set(attacks)) != len(attacks):
        raise ConfigError(f"each attack once, please: {', '.join(attacks)}")
    return attacks


def _check_budget(budget: Budget) -> None:
    v.whole("steps", budget.steps, 1)
    v.whole("target_classes", budget.target_classes, 1)
    v.whole("max_queries", budget.max_queries, 1)
    v.whole("square_queries", budget.square_queries, 1)


@dataclass
class RobustResult:
    """``clean_accuracy``: right on the clean images; ``robust_accuracy``: right clean and under
    every attack; ``fgsm_accuracy``: right clean and under FGSM alone at the same eps (all
    fractions of ``n_images``). ``broken[name]``: how many images that attack was the first to
    break. ``outcomes[i]``: ``"misclassified"`` (wrong when clean), the attack that broke image
    ``i``, or ``"robust"``; ``fgsm_outcomes[i]``: whether image ``i`` is right clean and under
    FGSM. ``seconds[name]``: time spent in that attack (summed over the processes of a sharded
    run). ``warnings``: what AutoAttack's checks found (:mod:`~advstudio.core.attacks.checks`)."""

    eps: float
    attacks: tuple[str, ...]
    n_images: int = 0
    clean_accuracy: float = math.nan
    robust_accuracy: float = math.nan
    fgsm_accuracy: float = math.nan
    broken: dict[str, int] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    fgsm_outcomes: list[bool] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[checks.Finding] = field(default_factory=list)


def _device_of(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return fallback


def evaluate_robustness(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    budget: Budget = Budget(),
    batch_size: int = 100,
) -> Job[RobustResult]:
    """The job behind :func:`robust_accuracy` and :func:`run_robust`. Events: per batch
    ``Progress`` after the clean + FGSM pass and after each attack, and after each attack
    ``Metrics(step, {"images", "clean_accuracy", "robust_accuracy", "fgsm_accuracy"})`` over
    the images seen so far (the current batch's later attacks not yet run: an upper bound).

    Under ``torchrun`` each process attacks a contiguous block of the batches, each batch
    seeded by its place in the whole job (``budget.seed + batch``), and the blocks' outcomes
    are gathered at the end (:mod:`advstudio.core.distributed`): the result is a single
    process's, image for image. Progress and the live metrics are this process's images."""
    eps = check_eps(eps)
    attacks = check_attacks(attacks)
    _check_budget(budget)
    batch_size = check_steps(batch_size, "batch_size")
    xb, _ = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    device = _device_of(model, xb.device)
    result = RobustResult(
        eps, attacks, broken={name: 0 for name in attacks}, seconds={name: 0.0 for name in attacks}
    )
    runs = {name: robust_attack(name) for name in attacks}
    batches = list(zip(xb.split(batch_size), labels.split(batch_size)))
    part = distributed.shard(len(batches))
    data = batches[part.start : part.stop]
    total = len(data) * (1 + len(attacks))
    done = step = seen = clean_right = robust = fgsm_right = 0
    phase = f"robust accuracy on {len(xb):,} images"
    fgsm_outcomes: list[bool] = []
    yield Progress(0, total, "clean predictions", phase)
    with eval_mode(model):
        for k, (xc, yc) in enumerate(data):
            b = part.start + k  # the batch's place in the whole job: its seed
            xc, yc = xc.to(device), yc.to(device)
            if b == 0:
                result.warnings += checks.before_attacks(model, xc, yc)
                for finding in result.warnings:
                    yield Log(f"check {finding.check}: {finding.text}")
            with torch.no_grad():
                right = model(xc).argmax(1) == yc
            outcomes = [ROBUST if r else MISCLASSIFIED for r in right.tolist()]
            with torch.no_grad():
                fgsm_ok = right & (model(fgsm(model, xc, yc, eps)).argmax(1) == yc)
            fgsm_outcomes += fgsm_ok.tolist()
            seen += len(xc)
            clean_right += int(right.sum())
            fgsm_right += int(fgsm_ok.sum())
            done += 1
            yield Progress(done, total, f"batch {k + 1}/{len(data)}: clean and FGSM", phase)
            alive = right.clone()
            for name in attacks:
                idx = alive.nonzero()[:, 0]
                if idx.numel():
                    start = time.perf_counter()
                    x_adv = runs[name](model, xc[idx], yc[idx], eps, budget, budget.seed + b)
                    x_adv = project(x_adv.to(device), xc[idx], eps)
                    with torch.no_grad():
                        fooled = model(x_adv).argmax(1) != yc[idx]
                    for i in idx[fooled].tolist():
                        outcomes[i] = name
                    alive[idx[fooled]] = False
                    result.broken[name] += int(fooled.sum())
                    result.seconds[name] += time.perf_counter() - start
                done += 1
                yield Progress(
                    done, total, f"batch {k + 1}/{len(data)}: {attack_label(name)}", phase
                )
                yield Metrics(
                    step,
                    {
                        "images": float(seen),
                        "clean_accuracy": clean_right / seen,
                        "robust_accuracy": (robust + int(alive.sum())) / seen,
                        "fgsm_accuracy": fgsm_right / seen,
                    },
                )
                step += 1
            robust += int(alive.sum())
            result.outcomes += outcomes
    if not part.single:  # every process's blocks, in image order
        blocks = distributed.gather_objects(
            (result.outcomes, fgsm_outcomes, result.broken, result.seconds)
        )
        result.outcomes = [o for block in blocks for o in block[0]]
        fgsm_outcomes = [f for block in blocks for f in block[1]]
        result.broken = {a: sum(block[2][a] for block in blocks) for a in attacks}
        result.seconds = {a: sum(block[3][a] for block in blocks) for a in attacks}
        clean_right = sum(o != MISCLASSIFIED for o in result.outcomes)
        robust = sum(o == ROBUST for o in result.outcomes)
        fgsm_right = sum(fgsm_outcomes)
    result.fgsm_outcomes = fgsm_outcomes
    late = checks.masking(result.broken, GRADIENT_ATTACKS, QUERY_ATTACKS)
    if late is not None:
        result.warnings.append(late)
        yield Log(f"check {late.check}: {late.text}")
    n = len(xb)
    result.n_images = n
    result.clean_accuracy = clean_right / n
    result.robust_accuracy = robust / n
    result.fgsm_accuracy = fgsm_right / n
    return result


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    *,
    steps: int = 100,
    target_classes: int = 9,
    max_queries: int = 1000,
    seed: int = 0,
    batch_size: int = 100,
    square_queries: int = 5000,
) -> RobustResult:
    """Robust accuracy of any classifier on in-memory images ``x`` (N, C, H, W) in [0, 1] with
    labels ``y`` at L-inf radius ``eps``, under ``attacks`` in order (names from
    :func:`attack_names`; ``ENSEMBLES["standard"]`` for AutoAttack's). Batches go to the
    model's device.

    >>> res = robust_accuracy(trained, x, y, eps=0.1)
    >>> res.clean_accuracy, res.robust_accuracy, res.fgsm_accuracy, res.broken
    """
    budget = Budget(steps, target_classes, max_queries, seed, square_queries)
    return drive(evaluate_robustness(model, x, y, eps, attacks, budget, batch_size)).result


# --------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class RobustConfig:
    """``model``: registry key, or an in-memory ``nn.Module`` (registered, then replaced by its
    key); ``card``: the model card's fields for a ``file:`` or in-memory model without one
    (:mod:`advstudio.core.models.fields`). ``eps``: L-inf radius in [0, 1]. ``n_images``: how
    many images of the data set (drawn with ``seed`` as the sweep draws them). ``dataset`` /
    ``split`` / ``fit``: as in the sweep (:mod:`advstudio.core.data.fields`). ``ensemble``:
    ``standard`` (AutoAttack's: APGD-CE, APGD-T, FAB-T, Square) or ``fast`` (APGD-CE, APGD-T,
    SPSA). ``attacks``: a custom order instead, from :func:`attack_names` (empty: the
    ensemble's). ``steps``: per APGD / FAB-T run; ``target_classes``: APGD-T's and FAB-T's
    targets; ``max_queries``: per image for SPSA / SimBA; ``square_queries``: Square's.
    ``dry_run``: 8 images, 5 steps, 50 queries."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    eps: float = 0.1
    ensemble: str = "standard"
    attacks: tuple[str, ...] = ()
    n_images: int = 200
    batch_size: int = 100
    steps: int = 100
    target_classes: int = 9
    max_queries: int = 1000
    square_queries: int = 5000
    seed: int = 0
    device: str = "auto"
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    dry_run: bool = False

    def __post_init__(self) -> None:
        v.choice("ensemble", self.ensemble, tuple(ENSEMBLES))
        object.__setattr__(self, "attacks", check_attacks(self.attacks or ENSEMBLES[self.ensemble]))
        object.__setattr__(self, "eps", check_eps(self.eps))
        check_model_fields(self)
        v.whole("n_images", self.n_images, 1)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)
        check_fields(self)
        _check_budget(self.budget)

    @property
    def budget(self) -> Budget:
        """The ensemble's settings (the dry run's smaller ones)."""
        if self.dry_run:
            return Budget(
                min(self.steps, 5),
                min(self.target_classes, 2),
                min(self.max_queries, 50),
                self.seed,
                min(self.square_queries, 50),
            )
        return Budget(
            self.steps, self.target_classes, self.max_queries, self.seed, self.square_queries
        )


def run_robust(config: RobustConfig) -> Job[RobustResult]:
    """Robust accuracy of a registry model on ``config.dataset``; see
    :func:`evaluate_robustness` for the events.

    >>> drive(run_robust(RobustConfig(eps=0.2))).result.robust_accuracy
    """
    from advstudio.core.data.fields import job_images
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    model = load_model(config.model, device, card=config.card)
    n = min(DRY_RUN_IMAGES, config.n_images) if config.dry_run else config.n_images
    from advstudio.core.models.download import fetch_data

    yield from fetch_data(config.dataset)  # a torchvision set: once, with progress
    images = job_images(config.dataset, config.split, n, config.seed, model, config.fit)
    x, y = images.x, images.y
    n = len(x)
    budget = config.budget
    yield Log(
        f"robust accuracy of {model.name} at eps {config.eps:g} on {n} images: "
        + ", then ".join(attack_label(a) for a in config.attacks)
        + f" ({budget.steps} steps, {budget.max_queries} queries)"
    )
    for line in images.lines:
        yield Log(line)
    return (
        yield from evaluate_robustness(
            model, x.to(device), y.to(device), config.eps, config.attacks, budget, config.batch_size
        )
    )
