"""Auto-PGD, L-inf and L2 (Croce & Hein 2020, arXiv:2003.01690): PGD without a step size to tune.

APGD starts with step ``2 * eps``, adds momentum (0.75) and halves the step at checkpoints
where progress stalled, restarting from the best point found so far; with the DLR loss (scale
invariant, unlike cross-entropy on over-confident logits) it is the core of AutoAttack.

Why our own implementation rather than ``torchattacks.APGD`` or the ``autoattack`` package:
those pin old versions or pull in extra dependencies, restore the model's mode outside
``try/finally``, and know nothing of our [0, 1]
:class:`~advstudio.core.models.classifier.Classifier`, our device handling or our cancellable
job progress. The algorithm follows the paper (and its
reference code for the checkpoint schedule); differences are noted where they occur.

Units: pixels in [0, 1]; ``eps`` on that scale (L-inf) or an L2 length over all pixel values
(``norm="L2"``, :mod:`~advstudio.core.attacks.l2`). Batched, any device, eval mode restored on
exit, detached output of the input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.l2 import check_radius, l2_normalise, l2_sphere_start, project_l2
from advstudio.core.attacks.minimal import checked_logits, differentiable_logits, input_gradient
from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    check_classes,
    check_eps,
    check_images,
    check_steps,
    check_targets,
    eval_mode,
    project,
)
from advstudio.core.errors import ConfigError

APGD_LOSSES = ("ce", "dlr")
APGD_NORMS = ("Linf", "L2")
MOMENTUM = 0.75  # alpha in the paper: weight of the new gradient step
RHO = 0.75  # a checkpoint halves the step if the loss rose in fewer than RHO of the steps
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


# --------------------------------------------------------------------------- losses


def _others_max(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.scatter(1, labels[:, None], float("-inf")).amax(1)


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio, per image: ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``
    (``z_pi1 >= z_pi2 >= ...`` the sorted logits). Invariant to shifting and scaling the
    logits; > 0 exactly when the image is misclassified. Needs at least 3 classes."""
    top = logits.sort(1, descending=True).values
    own = logits.gather(1, labels[:, None])[:, 0]
    return -(own - _others_max(logits, labels)) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(
    logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Targeted DLR, per image: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``; rises as the
    target's logit overtakes the true class's. Needs at least 4 classes."""
    top = logits.sort(1, descending=True).values
    own = logits.gather(1, labels[:, None])[:, 0]
    aim = logits.gather(1, target[:, None])[:, 0]
    return -(own - aim) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def _loss(name: str, targeted: bool) -> Loss:
    """Per-image objective to *maximise*, as ``loss(logits, labels, target)``."""
    if name == "ce":
        if targeted:
            return lambda z, y, t: -F.cross_entropy(z, t, reduction="none")
        return lambda z, y, t: F.cross_entropy(z, y, reduction="none")
    if targeted:
        return targeted_dlr_loss
    return lambda z, y, t: dlr_loss(z, y)


# --------------------------------------------------------------------------- the attack


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    eps: float,
    steps: int = 100,
    loss: str = "ce",
    targeted: bool = False,
    target: Labels | None = None,
    target_classes: int = 9,
    restarts: int = 1,
    seed: int | None = None,
    norm: str = "Linf",
) -> torch.Tensor:
    """Auto-PGD (Croce & Hein 2020, arXiv:2003.01690). Norm: L-inf, or L2 with ``norm="L2"``
    (steps along ``grad / ||grad||_2``, projection onto the L2 ball, random start on its
    sphere, as the authors' L2 version; ``eps`` then an L2 radius, which may exceed 1).

    ``y``: the true labels. ``loss``: ``"ce"`` (cross-entropy) or ``"dlr"`` (Difference of
    Logits Ratio). Each run starts at a random corner-ish point of the eps-ball (uniform noise
    scaled so its largest entry is ``eps``), takes ``steps`` momentum steps and keeps, per
    image, the first point that succeeds. ``restarts`` runs, each on the images not yet broken.

    Targeted (``targeted=True``), the objective pulls towards a target class (targeted DLR,
    or ``-CE(f(x), t)`` with ``loss="ce"``):

    - with ``target`` given, success means predicting that target;
    - with ``target=None``, as AutoAttack's APGD-T: one run (times ``restarts``) per target
      class, the ``target_classes`` most likely wrong classes of the clean image in turn, and
      success means any misclassification.

    Returns per image the first successful point found, or else the highest-loss point of all
    runs; images already misclassified (already the target) are returned unchanged.

    >>> x_adv = apgd(cnn, x, y, eps=0.1, loss="dlr", targeted=True)
    """
    if norm not in APGD_NORMS:
        raise ConfigError(f"unknown APGD norm {norm!r}; allowed: {', '.join(APGD_NORMS)}")
    eps = check_eps(eps) if norm == "Linf" else check_radius(eps)
    steps = check_steps(steps)
    restarts = check_steps(restarts, "restarts")
    if loss not in APGD_LOSSES:
        raise ConfigError(f"unknown APGD loss {loss!r}; allowed: {', '.join(APGD_LOSSES)}")
    if target is not None and not targeted:
        raise ConfigError(
            "a target class was given for an untargeted attack; pass targeted=True, or no target"
        )
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model):
        clean = checked_logits(model, xb)
        classes = clean.shape[1]
        check_classes(labels, classes, "label")
        needed = 4 if targeted and loss == "dlr" else 3 if loss == "dlr" else 2
        if classes < needed:
            raise ConfigError(
                f"the {'targeted ' if targeted else ''}{loss.upper()} loss needs "
                f"at least {needed} classes; this model has {classes}"
            )
        if target is not None:
            goals = as_labels(target, len(xb), xb.device)
            check_classes(goals, classes, "target class")
            check_targets(goals, labels)
            runs = [goals] * restarts
            success = clean.argmax(1) == goals
        else:
            if targeted:
                if (
                    isinstance(target_classes, bool)
                    or not isinstance(target_classes, int)
                    or not 1 <= target_classes <= classes - 1
                ):
                    raise ConfigError(
                        f"target_classes must be a whole number in "
                        f"[1, {classes - 1}] for this model, not {target_classes!r}"
                    )
                ranked = clean.scatter(1, labels[:, None], float("-inf")).argsort(
                    1, descending=True
                )
                runs = [ranked[:, r] for r in range(target_classes) for _ in range(restarts)]
            else:
                runs = [None] * restarts
            success = clean.argmax(1) != labels
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        out = _apgd(
            model,
            xb,
            labels,
            runs,
            target is not None,
            success,
            eps,
            steps,
            _loss(loss, targeted),
            generator,
            norm == "L2",
        ).detach()
    return out[0] if single else out


def _apgd(
    model: nn.Module,
    xb: torch.Tensor,
    labels: torch.Tensor,
    runs: list[torch.Tensor | None],
    hit_target: bool,
    success: torch.Tensor,
    eps: float,
    steps: int,
    objective: Loss,
    generator: torch.Generator | None,
    l2: bool = False,
) -> torch.Tensor:
    """Run after run on the images not yet broken; see :func:`apgd`."""
    out = xb.clone()
    best_loss = torch.full((len(xb),), -math.inf, device=xb.device)
    for goals in runs:
        idx = (~success).nonzero()[:, 0]
        if idx.numel() == 0 or eps == 0:
            break
        t = goals[idx] if goals is not None else None
        if l2:
            start = l2_sphere_start(xb[idx], eps, generator)
        else:
            noise = torch.rand(xb[idx].shape, generator=generator).to(xb.device, xb.dtype) * 2 - 1
            noise = noise / noise.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            start = project(xb[idx] + eps * noise, xb[idx], eps)
        x_adv, hit, x_max, loss_max = _run(
            model, xb[idx], labels[idx], t, hit_target, eps, steps, objective, start, l2
        )
        success[idx[hit]] = True
        out[idx[hit]] = x_adv[hit]
        better = ~hit & (loss_max > best_loss[idx])
        out[idx[better]] = x_max[better]
        best_loss[idx[better]] = loss_max[better]
    return out


def _run(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    target: torch.Tensor | None,
    hit_target: bool,
    eps: float,
    steps: int,
    objective: Loss,
    start: torch.Tensor,
    l2: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run. Returns (first successful point, success, highest-loss point, its loss).
    ``l2``: normalised-gradient steps and the L2 ball instead of sign steps and the box.

    Images leave the batch as soon as they succeed, so later steps only pay for the rest.
    Checkpoints (the paper's ``w_j``): the first after ``0.22 * steps`` steps, then each interval
    ``0.03 * steps`` shorter down to ``0.06 * steps``. At a checkpoint an image's step halves, and
    it restarts from its best point (with zero momentum; the reference code keeps the stale
    momentum), if the loss rose in fewer than ``RHO`` of the interval's steps, or if the step
    was not halved at the previous checkpoint and the best loss has not improved since.
    """
    n = len(x)
    adv_out, max_out = x.clone(), x.clone()
    hit_out = torch.zeros(n, dtype=torch.bool, device=x.device)
    loss_out = torch.full((n,), -math.inf, device=x.device)
    rows = torch.arange(n, device=x.device)  # which image each state row is

    def evaluate(xa: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xa = xa.detach().requires_grad_(True)
        t = target[r] if target is not None else None
        with torch.enable_grad():
            logits = differentiable_logits(model, xa).float()
            value = objective(logits, labels[r], t)
            grad = input_gradient(value.sum(), xa)
        pred = logits.detach().argmax(1)
        hit = pred == t if hit_target else pred != labels[r]
        return value.detach(), grad, hit

    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    x_cur = start
    loss, grad, hit = evaluate(x_cur, rows)
    x_prev, x_best, loss_best, grad_best = x_cur, x_cur.clone(), loss.clone(), grad.clone()
    step = torch.full((n,), 2 * eps, device=x.device, dtype=x.dtype)
    rises = torch.zeros(n, device=x.device)
    loss_at_check = loss.clone()
    halved_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
    since_check = 0
    for i in range(steps + 1):
        if bool(hit.any()):  # record the images that succeeded and drop them
            adv_out[rows[hit]] = x_cur[hit]
            hit_out[rows[hit]] = True
            keep = ~hit
            rows, x_cur, x_prev, grad, loss = (
                rows[keep],
                x_cur[keep],
                x_prev[keep],
                grad[keep],
                loss[keep],
            )
            x_best, loss_best, grad_best = x_best[keep], loss_best[keep], grad_best[keep]
            step, rises, loss_at_check = step[keep], rises[keep], loss_at_check[keep]
            halved_at_check = halved_at_check[keep]
        if i == steps or rows.numel() == 0:
            break
        x0 = x[rows]
        a = 1.0 if i == 0 else MOMENTUM
        ball = project_l2 if l2 else project
        direction = l2_normalise(grad) if l2 else grad.sign()
        z = ball(x_cur + step.view(-1, 1, 1, 1) * direction, x0, eps)
        x_next = ball(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), x0, eps)
        loss_prev = loss
        x_prev, x_cur = x_cur, x_next
        loss, grad, hit = evaluate(x_cur, rows)
        rises += (loss > loss_prev).float()
        improved = loss > loss_best
        x_best[improved], loss_best[improved] = x_cur[improved], loss[improved]
        grad_best[improved] = grad[improved]
        since_check += 1
        if since_check == interval:
            halve = (rises < RHO * interval) | (~halved_at_check & (loss_best <= loss_at_check))
            step[halve] /= 2
            x_cur, x_prev, grad, loss = x_cur.clone(), x_prev.clone(), grad.clone(), loss.clone()
            x_cur[halve] = x_prev[halve] = x_best[halve]
            grad[halve], loss[halve] = grad_best[halve], loss_best[halve]
            halved_at_check, loss_at_check = halve, loss_best.clone()
            rises.zero_()
            since_check, interval = 0, max(interval - shrink, shortest)
    max_out[rows], loss_out[rows] = x_best, loss_best
    return adv_out, hit_out, max_out, loss_out
