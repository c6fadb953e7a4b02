"""Minimal-perturbation attacks: not "what can eps do" but "how far is the decision boundary".

- :func:`deepfool` (Moosavi-Dezfooli et al. 2016, arXiv:1511.04599): linearise the classifier,
  step onto the nearest linearised boundary, repeat. L2, a few gradient steps, no budget to tune.
- :func:`cw_l2` (Carlini & Wagner 2017, arXiv:1608.04644): minimise ``||x' - x||_2^2 + c f(x')``
  with Adam in tanh space, binary search on ``c`` per image. Slower, and the reference for the
  smallest L2 perturbation a gradient attack finds.
- :func:`minimal_norms`: per image, the L2 and L-inf size of the smallest flipping perturbation
  each method finds (FGSM through :func:`~advstudio.core.attacks.metrics.minimal_epsilons`): the
  Attack tab's "distance to the boundary" comparison.

Units as everywhere: pixels in [0, 1], norms over all pixel values (channels included). The
attacks are batched, run on the device of ``x``, put the model in eval mode (restored on exit),
return detached images in [0, 1] of the input's shape and never accumulate parameter ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advstudio.core.attacks.blackbox import margin
from advstudio.core.attacks.metrics import l2, linf, minimal_epsilons
from advstudio.core.attacks.whitebox import (
    _NO_GRADIENT,
    Labels,
    as_labels,
    check_classes,
    check_images,
    check_steps,
    check_targets,
    eval_mode,
    fgsm_direction,
)
from advstudio.core.errors import AttackError, ConfigError

DEEPFOOL_NUDGE = 1e-4
"""Added to each DeepFool step's L2 length (as the authors' code), so that a step with zero
overshoot lands just past the linearised boundary rather than on it."""
TANH_SHRINK = 1 - 1e-6
"""C&W starts from ``w = atanh((2x - 1) * TANH_SHRINK)``: pixels at exactly 0 or 1 stay finite."""


# --------------------------------------------------------------------------- shared helpers


def differentiable_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with autograd on (also under a caller's ``no_grad``), checked to be
    (N, classes) logits that depend on ``x``; else :class:`AttackError`. Call in eval mode, with
    ``x`` (or what it was computed from) requiring grad."""
    with torch.enable_grad():
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise AttackError(
            f"the model must return (N, classes) logits, not "
            f"{getattr(logits, 'shape', type(logits).__name__)}"
        )
    if not logits.requires_grad:
        raise AttackError(_NO_GRADIENT)
    return logits


def checked_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Detached logits of ``x``, from a forward pass that checks the model *can* give input
    gradients, so an attack refuses a gradient-free model even when no image needs a step."""
    return differentiable_logits(model, x.detach().requires_grad_(True)).detach()


def input_gradient(
    objective: torch.Tensor, x: torch.Tensor, retain_graph: bool = False
) -> torch.Tensor:
    """d ``objective`` / d ``x`` by ``torch.autograd.grad`` (no parameter ``.grad`` touched);
    :class:`AttackError` when the objective does not depend on ``x``."""
    (grad,) = torch.autograd.grad(objective, x, retain_graph=retain_graph, allow_unused=True)
    if grad is None:
        raise AttackError(_NO_GRADIENT)
    return grad


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``), else a :class:`ConfigError` naming it."""
    bound = ">= 0" if allow_zero else "> 0"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number {bound}, not {value!r}") from None
    ok = number >= 0 if allow_zero else number > 0
    if not (ok and math.isfinite(number)):
        raise ConfigError(f"{name} must be a finite number {bound}, not {number:g}")
    return number


def _view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-image values (N,) shaped to broadcast over images like ``like`` (N, C, H, W)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


# --------------------------------------------------------------------------- DeepFool


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    *,
    y: Labels | None = None,
    steps: int = 50,
    overshoot: float = 0.02,
    num_classes: int | None = None,
) -> torch.Tensor:
    """DeepFool, multi-class, L2 (Moosavi-Dezfooli et al. 2016, arXiv:1511.04599).

    Each step linearises the logits around the current point; for every candidate class ``k``
    (``f_k = z_k - z_orig``, ``w_k = grad f_k``) the linearised boundary is ``|f_k| / ||w_k||``
    away, and the step ``r = (|f_l| / ||w_l|| + DEEPFOOL_NUDGE) * w_l / ||w_l||`` goes to the
    nearest one. Overshoot is applied to the accumulated step, as in the authors' code:
    ``x_i = clip(x + (1 + overshoot) * r_total, 0, 1)`` (``r_total`` itself is kept inside the
    box). On a linear classifier, away from the box edges, one step is therefore exactly
    ``(1 + overshoot)`` times the nudged step to the nearest decision boundary.

    ``y``: optional true labels; images the model already gets wrong are returned unchanged.
    Otherwise each image leaves the class the model predicts for it. An image stops as soon as
    its prediction changes, or after ``steps`` steps. ``num_classes``: the candidate classes
    are the top ``num_classes`` by clean logit (the predicted one included; None = all), which
    saves backward passes on models with many classes (each step costs one backward per
    candidate).

    >>> x_adv = deepfool(cnn, x, y=y)
    >>> l2(x, x_adv)        # the per-image distance to the boundary
    """
    steps = check_steps(steps)
    overshoot = check_positive(overshoot, "overshoot", allow_zero=True)
    xb, single = check_images(x)
    with eval_mode(model), torch.enable_grad():
        x_adv = _deepfool(model, xb, y, steps, overshoot, num_classes).detach()
    return x_adv[0] if single else x_adv


def _deepfool(
    model: nn.Module,
    xb: torch.Tensor,
    y: Labels | None,
    steps: int,
    overshoot: float,
    num_classes: int | None,
) -> torch.Tensor:
    clean = checked_logits(model, xb)
    classes = clean.shape[1]
    if num_classes is None:
        k = classes
    elif (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 2 <= num_classes <= classes
    ):
        raise ConfigError(
            f"num_classes must be None (all classes) or a whole number in "
            f"[2, {classes}] for this model, not {num_classes!r}"
        )
    else:
        k = num_classes
    candidates = clean.topk(k, dim=1).indices  # column 0: the predicted class
    active = torch.ones(len(xb), dtype=torch.bool, device=xb.device)
    if y is not None:
        labels = as_labels(y, len(xb), xb.device)
        check_classes(labels, classes, "label")
        active = candidates[:, 0] == labels  # already wrong: nothing to do
    r_total = torch.zeros_like(xb)
    x_adv = xb.clone()
    for _ in range(steps):
        idx = active.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        xa = x_adv[idx].requires_grad_(True)
        logits = differentiable_logits(model, xa)
        cand = candidates[idx]
        flipped = logits.detach().argmax(1) != cand[:, 0]
        active[idx[flipped]] = False
        if bool(flipped.all()):
            break
        z = logits.gather(1, cand)  # (n, k) candidate logits
        grads = torch.stack(
            [input_gradient(z[:, j].sum(), xa, retain_graph=j < k - 1) for j in range(k)], 1
        )  # (n, k, C, H, W)
        keep = ~flipped
        idx, grads, z = idx[keep], grads[keep], z.detach()[keep]
        w = (grads[:, 1:] - grads[:, :1]).flatten(2)  # (n, k - 1, D)
        f = z[:, 1:] - z[:, :1]  # < 0 while not flipped
        w_norm = w.norm(dim=2)
        distance = f.abs() / w_norm.clamp_min(1e-12)
        distance[w_norm == 0] = math.inf  # a class the gradient cannot reach
        nearest = distance.argmin(1)
        rows = torch.arange(len(idx), device=xb.device)
        d, w_l, n_l = distance[rows, nearest], w[rows, nearest], w_norm[rows, nearest]
        stuck = ~torch.isfinite(d)  # zero gradient everywhere: give up
        active[idx[stuck]] = False
        scale = torch.where(stuck, 0.0, (d + DEEPFOOL_NUDGE) / n_l.clamp_min(1e-12))
        step = (scale[:, None] * w_l).view(-1, *xb.shape[1:])
        x0 = xb[idx]
        r_total[idx] = (x0 + r_total[idx] + step).clamp(0.0, 1.0) - x0
        x_adv[idx] = (x0 + (1 + overshoot) * r_total[idx]).clamp(0.0, 1.0)
    return x_adv


# --------------------------------------------------------------------------- Carlini-Wagner


def cw_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    targeted: bool = False,
    c: float = 1.0,
    kappa: float = 0.0,
    steps: int = 100,
    lr: float = 0.1,
    search_steps: int = 5,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """Carlini-Wagner L2 (Carlini & Wagner 2017, arXiv:1608.04644).

    Pixels are written ``x' = (tanh(w) + 1) / 2`` (always in [0, 1], no clipping) and Adam
    (learning rate ``lr``, ``steps`` steps from ``w = atanh(2x - 1)``) minimises per image
    ``||x' - x||_2^2 + c * max(Z_y - max_{j != y} Z_j, -kappa)`` on the logits ``Z``
    (targeted, ``y`` = targets: ``max(max_{j != t} Z_j - Z_t, -kappa)``). ``kappa`` >= 0 is the
    confidence margin a success needs, in logit units. The default ``lr`` is 0.1, not the
    paper's 0.01: the paper ran 10,000 steps, and in 100 steps at 0.01 the pixels at exactly 0
    or 1 (most of a digit; ``tanh`` is flat there) hardly move: on 32 test digits 0.01 flipped
    47 % of them, 0.1 all of them, with a smaller median L2 than DeepFool's.

    ``c`` is the first weight of the classification term; ``search_steps`` rounds of binary
    search per image then halve the bracket around the smallest successful ``c`` (multiplying by
    10 until one succeeds). Returns, per image, the smallest-L2 success seen at any step of any
    round, or the image itself where none succeeded (and where the clean image already
    qualifies). Cost: ``steps * search_steps`` forward + backward passes.

    >>> x_adv = cw_l2(cnn, x, y, steps=100, search_steps=5)
    """
    c = check_positive(c, "c (the weight of the classification loss)")
    kappa = check_positive(kappa, "kappa (confidence margin)", allow_zero=True)
    steps = check_steps(steps)
    search_steps = check_steps(search_steps, "search_steps")
    lr = check_positive(lr, "lr (Adam's learning rate)")
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if targeted:
        check_targets(labels, y_true)
    with eval_mode(model):
        out = _cw_l2(model, xb, labels, targeted, c, kappa, steps, lr, search_steps).detach()
    return out[0] if single else out


def _cw_l2(
    model: nn.Module,
    xb: torch.Tensor,
    labels: torch.Tensor,
    targeted: bool,
    c: float,
    kappa: float,
    steps: int,
    lr: float,
    search_steps: int,
) -> torch.Tensor:
    n = len(xb)

    def succeeded(m: torch.Tensor) -> torch.Tensor:
        return (m > 0) & (m >= kappa)

    clean = checked_logits(model, xb).float()
    check_classes(labels, clean.shape[1], "target class" if targeted else "label")
    best = xb.clone()
    best_l2 = torch.full((n,), math.inf, device=xb.device)
    best_l2[succeeded(margin(clean, labels, targeted))] = 0.0
    w_start = torch.atanh((2 * xb - 1) * TANH_SHRINK)
    const = torch.full((n,), c, dtype=torch.float64, device=xb.device)
    lo = torch.zeros_like(const)
    hi = torch.full_like(const, math.inf)
    for _ in range(search_steps):
        w = w_start.clone()
        moment1, moment2 = torch.zeros_like(w), torch.zeros_like(w)
        weight = const.to(xb.dtype)
        found = torch.zeros(n, dtype=torch.bool, device=xb.device)
        for t in range(1, steps + 1):
            w.requires_grad_(True)
            with torch.enable_grad():
                xa = (torch.tanh(w) + 1) / 2
                logits = differentiable_logits(model, xa).float()
                dist = (xa - xb).flatten(1).pow(2).sum(1)
                m = margin(logits, labels, targeted)  # > 0: adversarial
                loss = (dist + weight * (-m).clamp_min(-kappa)).sum()
                grad = input_gradient(loss, w)
            with torch.no_grad():
                hit = succeeded(m.detach())
                found |= hit
                size = dist.detach().sqrt()
                better = hit & (size < best_l2)
                best_l2[better] = size[better]
                best[better] = xa.detach()[better]
                w = _adam_step(w.detach(), grad, moment1, moment2, t, lr)
        # binary search on c, per image: smaller after a success, larger after a failure
        hi = torch.where(found, torch.minimum(hi, const), hi)
        lo = torch.where(found, lo, torch.maximum(lo, const))
        const = torch.where(torch.isfinite(hi), (lo + hi) / 2, const * 10)
    return best


def _adam_step(
    w: torch.Tensor,
    grad: torch.Tensor,
    moment1: torch.Tensor,
    moment2: torch.Tensor,
    t: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    """One Adam step (Kingma & Ba 2015, torch's defaults), updating the moments in place.
    Written out because ``torch.optim``'s first use imports ``torch._dynamo`` (5-10 s here);
    elementwise, so every image's (and pixel's) update is its own."""
    b1, b2 = betas
    moment1.mul_(b1).add_(grad, alpha=1 - b1)
    moment2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (moment2 / (1 - b2**t)).sqrt_().add_(eps)
    return w - lr / (1 - b1**t) * moment1 / denom


# --------------------------------------------------------------------------- comparison

MINIMAL_METHODS = ("fgsm", "deepfool", "cw")


@dataclass(frozen=True)
class MinimalNorms:
    """One method's smallest flipping perturbation per image (tensors of shape (N,), CPU).

    ``correct``: the model classifies the clean image right (only those have a boundary to
    cross; the others have norms 0 and ``success`` True). ``l2`` / ``linf``: the size of the
    perturbation found, NaN where the method failed (``success`` False).
    """

    method: str
    x_adv: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    success: torch.Tensor
    correct: torch.Tensor

    @property
    def success_rate(self) -> float:
        """Fraction of the correctly classified images the method flipped."""
        n = int(self.correct.sum())
        return float((self.success & self.correct).sum()) / n if n else math.nan

    def median(self, norm: str = "l2") -> float:
        """Median ``l2`` or ``linf`` over the correctly classified images it flipped."""
        values = getattr(self, norm)[self.success & self.correct]
        return float(values.median()) if values.numel() else math.nan


def minimal_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    methods: Sequence[str] = MINIMAL_METHODS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, MinimalNorms]:
    """How far each method has to move each image to change the model's prediction.

    ``methods``: any of ``fgsm`` (the smallest FGSM eps that flips it, by
    :func:`~advstudio.core.attacks.metrics.minimal_epsilons`; its perturbation is
    ``eps * sign(grad)`` after clipping), ``deepfool`` and ``cw`` (:func:`cw_l2`).
    ``options``: extra keyword arguments per method, e.g. ``{"cw": {"steps": 50}}``.

    >>> res = minimal_norms(cnn, x, y)
    >>> res["cw"].median("l2"), res["fgsm"].median("l2")
    """
    options = dict(options or {})
    unknown = [m for m in [*methods, *options] if m not in MINIMAL_METHODS]
    if unknown or not methods:
        raise ConfigError(
            f"unknown method {unknown[0]!r}; allowed: {', '.join(MINIMAL_METHODS)}"
            if unknown
            else "choose at least one method"
        )
    xb, _ = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model), torch.no_grad():
        clean = model(xb)
    check_classes(labels, clean.shape[1], "label")
    correct = clean.argmax(1) == labels
    out = {}
    for method in methods:
        kwargs = dict(options.get(method, {}))
        if method == "fgsm":
            eps = minimal_epsilons(model, xb, labels, **kwargs)
            direction = fgsm_direction(model, xb, labels)
            size = torch.tensor(
                [e if e is not None else 0.0 for e in eps], device=xb.device, dtype=xb.dtype
            )
            x_adv = (xb + _view(size, xb) * direction).clamp(0.0, 1.0)
        elif method == "deepfool":
            x_adv = deepfool(model, xb, y=labels, **kwargs)
        else:
            x_adv = cw_l2(model, xb, labels, **kwargs)
        with eval_mode(model), torch.no_grad():
            success = model(x_adv).argmax(1) != labels
        if method == "fgsm":  # minimal_epsilons' own verdict (None: no eps up to 1 works)
            success = torch.tensor([e is not None for e in eps], device=xb.device) & success
        nan = torch.tensor(math.nan)
        out[method] = MinimalNorms(
            method,
            x_adv.cpu(),
            torch.where(success.cpu(), l2(xb, x_adv).cpu(), nan),
            torch.where(success.cpu(), linf(xb, x_adv).cpu(), nan),
            success.cpu(),
            correct.cpu(),
        )
    return out
