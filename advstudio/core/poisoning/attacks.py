"""Poisoning attacks: each builds a :class:`~advstudio.core.poisoning.views.PoisonedView`.

- :func:`label_flip`: relabel some samples, to random other classes or to one target class.
- :func:`backdoor`: BadNets (Gu et al. 2017, arXiv:1708.06733): stamp a trigger on some images
  and relabel them to the target class; a model trained on them predicts the target whenever
  the trigger is present, and behaves normally otherwise.
- :func:`adversarial_poison` / :func:`adversarial_poison_job`: replace some images by FGSM or
  PGD adversarial examples made against a given model, with their own labels (clean-label) or
  flipped ones.

How many samples are poisoned, for every attack: the *pool* is the samples of class ``source``
(or the whole set when ``source`` is ``None``); ``count = round(fraction * len(pool))`` (halves
round up); the poisoned samples are ``count`` samples drawn uniformly without replacement (with a
generator seeded by ``seed``) from the *eligible* samples of the pool: those whose clean label is
not the target class when the attack has one (relabelling a 0 as 0 poisons nothing, and BadNets
stamps images of the other classes only). So a 10 % backdoor of the 4,000 training digits is 400
stamped images of classes 1-9. A fraction that poisons no sample, or more samples than are
eligible, is a :class:`ConfigError` naming the allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import torch
from torch import nn

from advstudio.core import validate as v
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Event, Progress, drive
from advstudio.core.models.card import ModelCard
from advstudio.core.poisoning.triggers import Trigger
from advstudio.core.poisoning.views import PoisonedView

NUM_CLASSES = 10
ADVERSARIAL_ATTACKS = ("fgsm", "pgd")
LABEL_MODES = ("clean", "flip")


# --------------------------------------------------------------------------- validation


def check_fraction(fraction: float, name: str = "fraction") -> float:
    """``fraction`` as a float, or :class:`ConfigError` unless it is in [0, 1]."""
    return v.number(name, fraction, 0.0, 1.0, hint="a share of the samples")


def check_class(c: int, name: str = "class", num_classes: int = NUM_CLASSES) -> int:
    """``c`` as an int, or :class:`ConfigError` unless it is a class in 0..num_classes-1."""
    if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_classes:
        raise ConfigError(f"{name} must be a class in 0..{num_classes - 1}, not {c!r}")
    return int(c)


def _describe_pool(source: int | None) -> str:
    return "the data set" if source is None else f"class {source}"


def poison_count(
    fraction: float, pool: int, eligible: int, source: int | None = None, target: int | None = None
) -> int:
    """``round(fraction * pool)`` (halves up), checked to be in 1..``eligible``."""
    fraction = check_fraction(fraction)
    count = math.floor(fraction * pool + 0.5)
    where = _describe_pool(source)
    if pool == 0:
        raise ConfigError(f"{where} has no samples to poison")
    if count == 0:
        smallest = 0.5 / pool
        raise ConfigError(
            f"fraction {fraction:g} poisons no sample: {where} has {pool} samples, so the "
            f"fraction must be in [{smallest:.3g}, 1] to poison at least one"
        )
    if count > eligible:
        why = (
            f" ({pool - eligible} are already of the target class {target})"
            if eligible < pool
            else ""
        )
        raise ConfigError(
            f"fraction {fraction:g} asks for {count} poisoned samples but only {eligible} of the "
            f"{pool} samples of {where} can be poisoned{why}; the fraction must be in "
            f"[{0.5 / pool:.3g}, {(eligible + 0.49) / pool:.3g}]"
        )
    return count


def _choose(
    y: torch.Tensor,
    fraction: float,
    source: int | None,
    target: int | None,
    generator: torch.Generator,
    num_classes: int,
) -> torch.Tensor:
    """The sorted indices of the samples to poison (see the module docstring)."""
    if source is not None:
        check_class(source, "source class", num_classes)
    if target is not None:
        check_class(target, "target class", num_classes)
        if source is not None and source == target:
            raise ConfigError(
                f"source and target are both class {source}: choose a target "
                "class other than the source, or no source (all classes)"
            )
    in_pool = torch.ones_like(y, dtype=torch.bool) if source is None else y == source
    eligible = in_pool if target is None else in_pool & (y != target)
    candidates = torch.nonzero(eligible).reshape(-1)
    count = poison_count(fraction, int(in_pool.sum()), len(candidates), source, target)
    pick = torch.randperm(len(candidates), generator=generator)[:count]
    return candidates[pick].sort().values


def _check_data(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
        raise ConfigError(
            f"expected images (N, C, H, W) and labels (N,), got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ConfigError(f"labels must be classes in 0..{num_classes - 1}")


def _other_classes(
    original: torch.Tensor, generator: torch.Generator, num_classes: int
) -> torch.Tensor:
    """A label drawn uniformly from the classes other than each original one."""
    offset = torch.randint(1, num_classes, original.shape, generator=generator)
    return (original + offset) % num_classes


# --------------------------------------------------------------------------- attacks


def label_flip(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    *,
    source: int | None = None,
    target: int | None = None,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
) -> PoisonedView:
    """Relabel ``fraction`` of class ``source`` (or of all samples when ``None``).

    ``target`` ``None``: each flipped sample gets a class drawn uniformly from the other
    ``num_classes - 1`` (random flips); otherwise every flipped sample is labelled ``target``
    (targeted flips; samples already of class ``target`` are not eligible). Images untouched.
    """
    _check_data(x, y, num_classes)
    g = torch.Generator().manual_seed(seed)
    indices = _choose(y, fraction, source, target, g, num_classes)
    if target is None:
        labels = _other_classes(y[indices], g, num_classes)
    else:
        labels = torch.full_like(indices, target)
    kind = "label flip" + ("" if target is None else f" to {target}")
    return PoisonedView(x, y, indices, labels, kind=kind)


DEFAULT_TRIGGER = Trigger()
"""BadNets' 3×3 white square at rows / cols 24-26 (an immutable value: safe as a default)."""


def backdoor(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    *,
    trigger: Trigger = DEFAULT_TRIGGER,
    target: int = 0,
    source: int | None = None,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
) -> PoisonedView:
    """BadNets: stamp ``trigger`` on ``fraction`` of the samples (of class ``source``, or of all
    classes) and label them ``target``.

    Images of the target class are never stamped (they would teach the trigger nothing), so at
    most the non-target share of the pool can be poisoned. The stamp is applied on read (the
    view's transform); no image is stored.
    """
    _check_data(x, y, num_classes)
    trigger.check_fits(x.shape[-2], x.shape[-1])
    target = check_class(target, "target class", num_classes)
    g = torch.Generator().manual_seed(seed)
    indices = _choose(y, fraction, source, target, g, num_classes)
    return PoisonedView(
        x,
        y,
        indices,
        torch.full_like(indices, target),
        transform=trigger,
        kind=f"backdoor to {target}",
    )


def triggered_set(
    x: torch.Tensor, y: torch.Tensor, trigger: Trigger, target: int, source: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images on which a backdoor's success is measured: those whose true class is not
    ``target`` (and is ``source``, when given), stamped. Returns ``(x_triggered, y_true)``."""
    keep = y != target
    if source is not None:
        keep &= y == source
    return trigger.stamp(x[keep]), y[keep]


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Argmax predictions of ``model`` (in eval mode, restored afterwards) on the CPU."""
    was_training = model.training
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    model.eval()
    try:
        out = [model(xb.to(device)).argmax(1).cpu() for xb in x.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def attack_success_rate(
    model: nn.Module, x_triggered: torch.Tensor, target: int, batch_size: int = 500
) -> float:
    """Share of ``x_triggered`` (images whose true class is not ``target``) that ``model``
    classifies as ``target``. NaN for an empty set."""
    if len(x_triggered) == 0:
        return math.nan
    return float((predict_labels(model, x_triggered, batch_size) == target).float().mean())


def adversarial_poison_job(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    *,
    model: nn.Module | str = "digits-cnn",
    card: ModelCard | None = None,
    attack: str = "fgsm",
    eps: float = 0.1,
    steps: int = 10,
    alpha: float | None = None,
    labels: str = "clean",
    target: int | None = None,
    source: int | None = None,
    seed: int = 0,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    num_classes: int = NUM_CLASSES,
) -> Generator[Event, None, PoisonedView]:
    """Replace ``fraction`` of the samples by adversarial examples (a job: yields ``Progress``
    per batch, returns the :class:`PoisonedView`).

    ``model``: a module mapping [0, 1] pixels to logits, or a registry key (default the built-in
    ``digits-cnn``) with its ``card`` when it is a file without one. ``attack``: ``"fgsm"``
    (one step of ``eps``) or ``"pgd"`` (``steps`` steps of ``alpha``, default ``eps / 4``,
    from a random start drawn with ``seed``); untargeted,
    against the clean labels; ``eps`` is an L-inf radius in pixel units.
    ``labels``: ``"clean"`` keeps each example's own label (clean-label poisoning: the images
    still look like their class); ``"flip"`` labels them ``target``, or a random other class
    when ``target`` is ``None``.
    """
    from advstudio.core.attacks.whitebox import check_eps, check_steps, fgsm, pgd

    _check_data(x, y, num_classes)
    if attack not in ADVERSARIAL_ATTACKS:
        raise ConfigError(f"attack must be one of {', '.join(ADVERSARIAL_ATTACKS)}, not {attack!r}")
    if labels not in LABEL_MODES:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_MODES)}, not {labels!r}")
    if labels == "clean" and target is not None:
        raise ConfigError("a target class only makes sense with flipped labels (labels='flip')")
    eps = check_eps(eps)
    steps = check_steps(steps)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    if isinstance(model, str):
        from advstudio.core.models.registry import load_model

        model = load_model(model, device, card=card)
    g = torch.Generator().manual_seed(seed)
    indices = _choose(y, fraction, source, target, g, num_classes)
    if labels == "clean":
        new_labels = y[indices].clone()
    elif target is None:
        new_labels = _other_classes(y[indices], g, num_classes)
    else:
        new_labels = torch.full_like(indices, target)
    dev = torch.device(device)
    step = alpha if alpha is not None else eps / 4
    out = []
    total = len(indices)
    yield Progress(0, total, f"{attack.upper()} examples, eps {eps:g}")
    for start in range(0, total, batch_size):
        idx = indices[start : start + batch_size]
        xb, yb = x[idx].to(dev), y[idx].to(dev)
        if attack == "fgsm":
            adv = fgsm(model, xb, yb, eps)
        else:
            adv = pgd(model, xb, yb, eps, alpha=step, steps=steps, generator=g)
        out.append(adv.detach().cpu().to(x.dtype))
        yield Progress(start + len(idx), total, f"{attack.upper()} examples, eps {eps:g}")
    images = torch.cat(out) if out else x[:0].clone()
    kind = f"{attack} poison ({labels} labels)"
    return PoisonedView(x, y, indices, new_labels, images=images, kind=kind)


def adversarial_poison(x: torch.Tensor, y: torch.Tensor, fraction: float, **kwargs) -> PoisonedView:
    """:func:`adversarial_poison_job` run to the end (same arguments)."""
    return drive(adversarial_poison_job(x, y, fraction, **kwargs)).result
