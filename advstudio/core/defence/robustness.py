"""Clean, FGSM and PGD accuracy of a classifier: the yardstick of every defence.

Units: pixels in [0, 1]; ``eps`` is an L-inf radius on that scale (``0.1`` = a tenth of the
grey range). The model (any module mapping [0, 1] images to logits, e.g. a
:class:`~advstudio.core.models.classifier.Classifier`) runs in eval mode throughout and its
training flags are restored afterwards.

FGSM is Goodfellow et al.'s one step at ``eps``; PGD is Madry et al.'s PGD-``pgd_steps`` with
step ``eps / 10`` from a uniformly random start (the reference figures' PGD-20). A model that
resists FGSM but not PGD has only learnt to mask FGSM's gradient (catastrophic overfitting).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import torch
from torch import nn

from advstudio.core.attacks import eval_mode, gradient_and_logits, pgd
from advstudio.core.attacks.whitebox import apply_direction, check_eps, check_steps
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Progress, drive

ATTACKS = ("clean", "fgsm", "pgd")
OVERFIT_DROP = 0.30  # PGD accuracy falling this much between evaluations...
OVERFIT_GAP = 0.50  # ...or FGSM accuracy at clean level with PGD this far below it


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (or buffers) live; CPU for a stateless module."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def iter_robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    attacks: Sequence[str] = ATTACKS,
    pgd_steps: int = 20,
    batch_size: int = 250,
    generator: torch.Generator | None = None,
) -> Generator[Progress, None, dict[str, float]]:
    """:func:`robust_accuracy` as a job fragment: yields ``Progress`` after each batch (so a
    caller can stay responsive and be cancelled) and returns the accuracies."""
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ConfigError(
            f"unknown attack {unknown[0] if unknown else '(none)'!r} for the "
            f"robustness evaluation; allowed: {', '.join(ATTACKS)}"
        )
    eps = check_eps(eps)
    pgd_steps = check_steps(pgd_steps, "pgd_steps")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(
            f"need one label per image and at least one image; got {len(x)} "
            f"images and {len(y)} labels"
        )
    device = model_device(model)
    correct = dict.fromkeys(attacks, 0)
    n = len(x)
    with eval_mode(model):
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            if "fgsm" in correct and eps > 0:
                # one pass gives the clean logits and FGSM's gradient
                grad, logits = gradient_and_logits(model, xb, yb, targeted=False)
                with torch.no_grad():
                    fgsm_pred = model(apply_direction(xb, grad.sign(), eps)).argmax(1)
            elif "clean" in correct or "fgsm" in correct:
                with torch.no_grad():
                    logits = model(xb)
                fgsm_pred = logits.argmax(1)  # at eps 0 FGSM changes nothing
            if "clean" in correct:
                correct["clean"] += int((logits.argmax(1) == yb).sum())
            if "fgsm" in correct:
                correct["fgsm"] += int((fgsm_pred == yb).sum())
            if "pgd" in correct:
                if eps == 0.0:
                    x_adv = xb
                else:
                    x_adv = pgd(
                        model,
                        xb,
                        yb,
                        eps,
                        alpha=eps / 10,
                        steps=pgd_steps,
                        random_start=True,
                        generator=generator,
                    )
                with torch.no_grad():
                    correct["pgd"] += int((model(x_adv).argmax(1) == yb).sum())
            done = min(start + batch_size, n)
            yield Progress(done, n, f"robust accuracy: {done} of {n} images")
    return {f"{name}_acc": count / n for name, count in correct.items()}


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    attacks: Sequence[str] = ATTACKS,
    pgd_steps: int = 20,
    batch_size: int = 250,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Accuracy of ``model`` on ``(x, y)`` clean and under each of ``attacks`` at ``eps``.

    Returns ``{"clean_acc", "fgsm_acc", "pgd_acc"}`` (those asked for), fractions in [0, 1].
    ``generator`` draws PGD's random starts (seed it for reproducible numbers).

    >>> robust_accuracy(model, x, y, eps=0.1)
    {'clean_acc': 0.97, 'fgsm_acc': 0.86, 'pgd_acc': 0.8}
    """
    job = iter_robust_accuracy(
        model,
        x,
        y,
        eps,
        attacks=attacks,
        pgd_steps=pgd_steps,
        batch_size=batch_size,
        generator=generator,
    )
    return drive(job).result


def overfitting_warning(
    previous: dict[str, float] | None,
    current: dict[str, float],
    *,
    drop: float = OVERFIT_DROP,
    gap: float = OVERFIT_GAP,
) -> str:
    """A warning when ``current`` (an evaluation) shows catastrophic overfitting, else "".

    Two signs: PGD accuracy fell by more than ``drop`` since ``previous`` while FGSM accuracy
    rose; or FGSM accuracy is at the clean level (within 5 points, or above it: "label
    leaking") while PGD accuracy is more than ``gap`` below it, so the model beats FGSM only.
    """
    keys = ("clean_acc", "fgsm_acc", "pgd_acc")
    if not all(k in current for k in keys):
        return ""
    clean, fgsm_acc, pgd_acc = (current[k] for k in keys)
    if (
        previous is not None
        and all(k in previous for k in keys)
        and pgd_acc < previous["pgd_acc"] - drop
        and fgsm_acc > previous["fgsm_acc"]
    ):
        return (
            f"Catastrophic overfitting: PGD accuracy fell from {previous['pgd_acc']:.1%} to "
            f"{pgd_acc:.1%} while FGSM accuracy rose from {previous['fgsm_acc']:.1%} to "
            f"{fgsm_acc:.1%}. The model is learning to defeat FGSM only; try the 'fgsm-rs' "
            "or 'pgd' recipe, or a smaller eps."
        )
    if fgsm_acc >= clean - 0.05 and pgd_acc < fgsm_acc - gap:
        return (
            f"Catastrophic overfitting: FGSM accuracy {fgsm_acc:.1%} is at the clean level "
            f"({clean:.1%}) but PGD accuracy is {pgd_acc:.1%}: the model defeats FGSM only "
            "(masked gradients). Try the 'fgsm-rs' or 'pgd' recipe, or a smaller eps."
        )
    return ""


def catastrophic_overfitting(history: Sequence[dict[str, float]]) -> bool:
    """Whether any evaluation in ``history`` (a :class:`TrainResult`'s) shows catastrophic
    overfitting by :func:`overfitting_warning`'s rules."""
    evaluated = [h for h in history if "pgd_acc" in h]
    return any(
        overfitting_warning(prev, cur) for prev, cur in zip([None, *evaluated[:-1]], evaluated)
    )
