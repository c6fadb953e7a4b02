"""FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack", arXiv:1907.02044), L-inf and L2.

A minimal-perturbation attack: each step linearises the boundary between the true class ``y``
and a target ``t`` (the hyperplane ``f + grad . (z - x_k) = 0`` of ``f = z_t - z_y``), projects
both the current point ``x_k`` and the original ``x`` onto it inside the box [0, 1], and moves to
a convex combination of the two projections, biased to the original (so the result stays
close to ``x``) and overshooting by ``eta``. A point that crosses is recorded if it is the
smallest so far, then pulled back towards ``x`` (``beta``) to search closer. On a linear model
the first step is the exact minimal perturbation (times ``eta``) and the rest close in on it.

As AutoAttack runs it (FAB-T), with no given target the attack aims in turn at the
``target_classes`` highest-scoring wrong classes of the clean image and keeps, per image, the
smallest perturbation that misclassifies. Differences from the authors' code: no random
restarts (AutoAttack's FAB-T has none either), and the projection onto hyperplane-and-box is a
closed form over sorted breakpoints written here for both norms.

Units: pixels in [0, 1]; distances over all pixel values. Eval mode restored on exit,
detached output of the input's shape, no parameter ``.grad`` touched.
"""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.attacks.minimal import (
    check_positive,
    checked_logits,
    differentiable_logits,
    input_gradient,
)
from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    check_classes,
    check_images,
    check_steps,
    check_targets,
    eval_mode,
)
from advstudio.core.errors import ConfigError

FAB_NORMS = ("Linf", "L2")
ALPHA_MAX = 0.1  # the paper's cap on the weight of the original point's projection
ETA = 1.05  # overshoot of each projection step
BETA = 0.9  # a crossing point is pulled back to x + BETA * (x' - x)


def project_hyperplane(
    g: torch.Tensor, c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, norm: str
) -> torch.Tensor:
    """Per row, the smallest ``d`` (in ``norm``) with ``g . d = c`` and ``lo <= d <= hi``
    (``lo <= 0 <= hi``; all (N, D), ``c`` (N,)); where the box cannot reach the hyperplane, the
    box point that gets closest.

    The solution is ``d_i = s_i * min(r a_i, room_i)``, ``s_i`` the sign that helps,
    ``room_i`` the box's room that way, ``a_i = 1`` (L-inf) or ``|g_i|`` (L2); ``g . d`` grows
    piecewise linearly in ``r``, with breakpoints ``room_i / a_i``, so sorting them gives ``r``
    exactly (the L-inf norm of ``d`` is ``r`` until the box bites)."""
    sign = torch.sign(c)[:, None] * torch.sign(g)
    room = torch.where(sign > 0, hi, -lo).clamp_min(0)
    mag = g.abs()
    a = mag if norm == "L2" else (mag > 0).to(g.dtype)
    breaks = torch.where(a > 0, room / a.clamp_min(1e-30), torch.zeros_like(room))
    order = breaks.argsort(1)
    b, r, m, w = (t.gather(1, order) for t in (breaks, room, mag, a))
    zero = torch.zeros_like(c)[:, None]
    clamped = torch.cat([zero, (m * r).cumsum(1)], 1)  # g . d from clamped coordinates
    slope = (m * w).sum(1, keepdim=True) - torch.cat([zero, (m * w).cumsum(1)], 1)
    reach = clamped[:, 1:] + b * slope[:, 1:]  # g . d at each breakpoint
    need = c.abs()[:, None]
    k = torch.where(
        (reach >= need).any(1),
        (reach >= need).int().argmax(1),
        torch.full_like(order[:, 0], g.shape[1]),
    )[:, None]
    ratio = (need - clamped.gather(1, k)) / slope.gather(1, k).clamp_min(1e-30)
    return sign * torch.minimum(ratio * a, room)


def _norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


def fab_t(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    norm: str = "Linf",
    steps: int = 100,
    target: Labels | None = None,
    target_classes: int = 9,
    alpha_max: float = ALPHA_MAX,
    eta: float = ETA,
    beta: float = BETA,
) -> torch.Tensor:
    """FAB-T (Croce & Hein 2020, arXiv:1907.02044), minimal ``norm`` ("Linf" or "L2").

    ``y``: the true labels. ``target``: a target class per image (success: predicting it); or
    None for AutoAttack's FAB-T, ``target_classes`` runs (9 by default) at the most likely wrong
    classes in turn (success: any misclassification). ``steps``: per run (the paper's 100);
    each step costs two forward passes and one backward. ``alpha_max`` (0.1), ``eta`` (1.05)
    and ``beta`` (0.9) are the paper's defaults.

    Returns per image the successful point of smallest ``norm`` found; images misclassified
    (already the target) to begin with, and images no run broke, come back unchanged.

    >>> x_adv = fab_t(cnn, x, y, norm="L2")
    >>> l2(x, x_adv)
    """
    if norm not in FAB_NORMS:
        raise ConfigError(f"unknown FAB norm {norm!r}; allowed: {', '.join(FAB_NORMS)}")
    steps = check_steps(steps)
    if not 0 < alpha_max <= 1 or not 0 < beta <= 1:
        raise ConfigError(f"alpha_max and beta must be in (0, 1], not {alpha_max:g}, {beta:g}")
    eta = check_positive(eta, "eta (overshoot)")
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model):
        clean = checked_logits(model, xb)
        classes = clean.shape[1]
        check_classes(labels, classes, "label")
        if target is not None:
            goals = as_labels(target, len(xb), xb.device)
            check_classes(goals, classes, "target class")
            check_targets(goals, labels)
            runs, done = [goals], clean.argmax(1) == goals
        else:
            if (
                isinstance(target_classes, bool)
                or not isinstance(target_classes, int)
                or not 1 <= target_classes <= classes - 1
            ):
                raise ConfigError(
                    f"target_classes must be a whole number in [1, {classes - 1}] "
                    f"for this model, not {target_classes!r}"
                )
            ranked = clean.scatter(1, labels[:, None], float("-inf")).argsort(1, descending=True)
            runs, done = [ranked[:, r] for r in range(target_classes)], clean.argmax(1) != labels
        best = xb.clone()
        best_norm = torch.full((len(xb),), float("inf"), device=xb.device)
        todo = (~done).nonzero()[:, 0]
        for goals in runs:
            if todo.numel() == 0:
                break
            found, size = _run(
                model,
                xb[todo],
                labels[todo],
                goals[todo],
                target is not None,
                norm,
                steps,
                alpha_max,
                eta,
                beta,
            )
            better = size < best_norm[todo]
            best[todo[better]], best_norm[todo[better]] = found[better], size[better]
    best = best.detach()
    return best[0] if single else best


def _run(
    model: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor,
    goals: torch.Tensor,
    hit_target: bool,
    norm: str,
    steps: int,
    alpha_max: float,
    eta: float,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FAB run towards ``goals``: (smallest successful point, its norm; inf if none)."""
    n = len(x0)
    flat0 = x0.flatten(1)
    best, best_norm = x0.clone(), torch.full((n,), float("inf"), device=x0.device)
    x_k = flat0.clone()
    for _ in range(steps):
        xa = x_k.view_as(x0).detach().requires_grad_(True)
        logits = differentiable_logits(model, xa)
        with torch.enable_grad():
            f = logits.gather(1, goals[:, None])[:, 0] - logits.gather(1, labels[:, None])[:, 0]
            g = input_gradient(f.sum(), xa).flatten(1)
        f = f.detach()
        d_k = project_hyperplane(g, -f, -x_k, 1 - x_k, norm)
        d_0 = project_hyperplane(g, -f - (g * (flat0 - x_k)).sum(1), -flat0, 1 - flat0, norm)
        n_k, n_0 = _norm(d_k, norm), _norm(d_0, norm)
        alpha = (n_k / (n_k + n_0).clamp_min(1e-12)).clamp(max=alpha_max)[:, None]
        x_next = ((1 - alpha) * (x_k + eta * d_k) + alpha * (flat0 + eta * d_0)).clamp(0, 1)
        with torch.no_grad():
            pred = model(x_next.view_as(x0)).argmax(1)
        hit = pred == goals if hit_target else pred != labels
        size = _norm(x_next - flat0, norm)
        better = hit & (size < best_norm)
        best[better] = x_next[better].view(-1, *x0.shape[1:])
        best_norm[better] = size[better]
        x_k = torch.where(hit[:, None], (1 - beta) * flat0 + beta * x_next, x_next)
    return best, best_norm
