"""Does an adversarial image survive being saved? And how to make it survive.

An attack returns float pixels; a PNG keeps only the 1/255 grid (``round(255 x)``), a JPEG
loses more. A perturbation that crosses the decision boundary by less than half a grey level
can flip back when saved. :func:`survival` checks each image as float, as PNG and (optionally)
as JPEG; :func:`quantise_adversarial` moves an adversarial image onto the 1/255 grid *inside the
eps-ball* and repairs the ones that rounding breaks; :func:`quantisation_aware` wraps any attack
with it.

Pixels and ``eps`` are in [0, 1]. "Adversarial" means: untargeted, prediction != true label;
targeted, prediction == target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core.attacks.transforms import JpegCompression
from advstudio.core.attacks.whitebox import (
    Attack,
    Labels,
    as_labels,
    check_classes,
    check_eps,
    check_images,
    eval_mode,
    gradient_and_logits,
)
from advstudio.core.errors import ConfigError

LEVELS = 255
"""Grey levels above zero in an 8-bit image: the grid is k / 255, k = 0..255."""
_TOL = 1e-3
"""Slack in grey levels for float round-off (``k / 255`` is not exact in float32)."""


def quantise_8bit(x: torch.Tensor) -> torch.Tensor:
    """The image as an 8-bit PNG stores it: ``round(255 x) / 255`` (ties to even, like
    :func:`~advstudio.core.images.pixels_to_uint8`), clipped to [0, 1]; same shape and dtype."""
    return torch.round(x.detach().clamp(0.0, 1.0) * LEVELS) / LEVELS


def jpeg_roundtrip(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """The image saved as a JPEG of ``quality`` (1 to 100) and loaded back; (N, C, H, W) or
    (C, H, W) with 1 or 3 channels. See
    :class:`~advstudio.core.attacks.transforms.JpegCompression`."""
    xb, single = check_images(x)
    out = JpegCompression(quality)(xb)
    return out[0] if single else out


# --------------------------------------------------------------------------- helpers


def _goal(
    y: Labels | None, n: int, device: torch.device, targeted: bool, target: Labels | None
) -> torch.Tensor:
    """The labels that define success: the targets (targeted) or the true labels."""
    if targeted:
        if target is None:
            raise ConfigError("a targeted check needs target classes (target=...)")
        return as_labels(target, n, device)
    if target is not None:
        raise ConfigError(
            "target classes were given but targeted=False; pass targeted=True for a targeted attack"
        )
    if y is None:
        raise ConfigError("an untargeted check needs the true labels y")
    return as_labels(y, n, device)


def _is_adversarial(pred: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
    return pred == goal if targeted else pred != goal


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _logits(model, x).argmax(1)


# --------------------------------------------------------------------------- survival


@dataclass(frozen=True)
class SurvivalReport:
    """Per image (tensors of shape (N,), on CPU): the prediction and whether it is adversarial,
    for the float image, its 8-bit PNG and its JPEG (``None`` when no ``jpeg_quality`` was
    asked for). ``goal`` holds the true labels (untargeted) or the targets (targeted)."""

    targeted: bool
    goal: torch.Tensor
    pred_float: torch.Tensor
    pred_png: torch.Tensor
    adv_float: torch.Tensor
    adv_png: torch.Tensor
    jpeg_quality: int | None = None
    pred_jpeg: torch.Tensor | None = None
    adv_jpeg: torch.Tensor | None = None

    def rates(self) -> dict[str, float]:
        """``adversarial``: share adversarial as float; ``survive_png`` / ``survive_jpeg``:
        among those, the share still adversarial after saving (NaN when none was)."""
        n_adv = int(self.adv_float.sum())

        def share(after: torch.Tensor) -> float:
            return int((after & self.adv_float).sum()) / n_adv if n_adv else math.nan

        out = {"adversarial": n_adv / len(self.adv_float), "survive_png": share(self.adv_png)}
        if self.adv_jpeg is not None:
            out["survive_jpeg"] = share(self.adv_jpeg)
        return out


def survival(
    model: nn.Module,
    x_adv: torch.Tensor,
    y: Labels | None,
    *,
    targeted: bool = False,
    target: Labels | None = None,
    jpeg_quality: int | None = None,
) -> SurvivalReport:
    """Is each adversarial image still adversarial once saved as PNG (8-bit) / JPEG?

    ``y``: the true labels (may be None for a targeted check); ``target``: the target classes
    when ``targeted``. Eval mode, no gradients, one forward pass per format.

    >>> r = survival(cnn, fgsm(cnn, x, y, 0.1), y, jpeg_quality=75)
    >>> r.rates()    # {'adversarial': ..., 'survive_png': ..., 'survive_jpeg': ...}
    """
    xb, _ = check_images(x_adv)
    goal = _goal(y, len(xb), xb.device, targeted, target)
    jpeg = JpegCompression(jpeg_quality) if jpeg_quality is not None else None
    with eval_mode(model):
        logits = _logits(model, xb)
        check_classes(goal, logits.shape[1], "target class" if targeted else "label")
        pred_float = logits.argmax(1)
        pred_png = _predict(model, quantise_8bit(xb))
        pred_jpeg = _predict(model, jpeg(xb)) if jpeg is not None else None

    def adv(pred: torch.Tensor) -> torch.Tensor:
        return _is_adversarial(pred, goal, targeted).cpu()

    return SurvivalReport(
        targeted=targeted,
        goal=goal.cpu(),
        pred_float=pred_float.cpu(),
        pred_png=pred_png.cpu(),
        adv_float=adv(pred_float),
        adv_png=adv(pred_png),
        jpeg_quality=None if jpeg is None else jpeg.quality,
        pred_jpeg=None if pred_jpeg is None else pred_jpeg.cpu(),
        adv_jpeg=None if pred_jpeg is None else adv(pred_jpeg),
    )


# --------------------------------------------------------------------------- repair


@dataclass(frozen=True)
class QuantisedResult:
    """``x_q``: the images on the 1/255 grid. Per image (CPU tensors / list, length N):
    ``fooled`` whether ``x_q`` is adversarial, ``fooled_float`` whether the float input was,
    ``linf`` = ``||x_q - x||_inf``, ``within_eps`` whether ``linf <= eps`` (up to float
    round-off), and ``method``: which rule produced it (``"nearest"``, ``"toward
    perturbation"``, ``"gradient step k"``), or ``"failed"`` (the float image fooled the
    model, no rule kept it fooling) or ``"not adversarial"`` (the float image did not fool the
    model either; not repaired). In the last two ``x_q`` is the nearest rounding."""

    x_q: torch.Tensor
    fooled: torch.Tensor
    fooled_float: torch.Tensor
    linf: torch.Tensor
    within_eps: torch.Tensor
    method: list[str]

    @property
    def repaired(self) -> torch.Tensor:
        """Images that the nearest rounding broke and a later rule fixed."""
        return torch.tensor(
            [m == "toward perturbation" or m.startswith("gradient step") for m in self.method]
        )


def _grid_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the lowest and highest grid value within ``[x - eps, x + eps] ∩ [0, 1]``, in
    grey levels (float64). Where that holds no grid value (x off the grid and eps < 1/255), both
    are the grid value nearest to x, at most half a grey level from it."""
    v = x.double() * LEVELS
    lo = torch.ceil((v - eps * LEVELS).clamp_min(0.0) - _TOL)
    hi = torch.floor((v + eps * LEVELS).clamp_max(LEVELS) + _TOL)
    empty = lo > hi
    if empty.any():
        nearest = torch.round(v)
        lo, hi = torch.where(empty, nearest, lo), torch.where(empty, nearest, hi)
    return lo, hi


def quantise_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: Labels | None,
    eps: float,
    *,
    targeted: bool = False,
    target: Labels | None = None,
    steps: int = 10,
) -> QuantisedResult:
    """Project ``x_adv`` onto the 1/255 grid within the eps-ball around ``x``, keeping it
    adversarial where it can. The rule, per image, first success wins:

    1. *nearest*: ``round(255 x_adv) / 255``, clamped to the grid values in the ball;
    2. *toward perturbation*: each pixel rounded away from ``x``: up (ceil) where
       ``x_adv > x``, down (floor) where ``x_adv < x``, to nearest where equal; clamped to the
       ball. Every pixel keeps its direction and moves by less than one grey level more;
    3. *gradient step k*: up to ``steps`` signed-gradient steps of exactly one grey level from
       rule 2's image (PGD on the integer grid, the attack's own objective), clamped to the
       ball after each step. Needs input gradients; ``steps=0`` skips it.

    Rules 2 and 3 only repair images whose float ``x_adv`` fooled the model: the result is
    the attack's own success, saved, not a stronger attack. Images none of the rules fix are
    reported ``"failed"`` and returned as rule 1 gave them.

    The ball: pixel i may take the grid values in ``[x_i - eps, x_i + eps] ∩ [0, 1]``. So
    ``||x_q - x||_inf <= eps`` whenever each pixel of ``x`` has a grid value that close
    (always when ``x`` is on the grid, as images loaded from 8-bit files are, or eps >= 1/510);
    otherwise such a pixel takes the grid value nearest to ``x_i``, and ``||x_q - x||_inf <=
    1/510`` < eps + 1/255. ``within_eps`` reports which images kept the budget.

    ``y`` are the true labels (may be None when ``targeted``), ``target`` the target classes.
    """
    eps = check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be a whole number >= 0, not {steps!r}")
    xb, single = check_images(x)
    ab, _ = check_images(x_adv)
    if ab.shape != xb.shape:
        raise ConfigError(
            f"clean and adversarial images differ in shape: {tuple(xb.shape)} vs {tuple(ab.shape)}"
        )
    goal = _goal(y, len(xb), xb.device, targeted, target)
    lo, hi = _grid_bounds(xb, eps)

    def on_grid(levels: torch.Tensor) -> torch.Tensor:
        return (torch.minimum(torch.maximum(levels, lo), hi) / LEVELS).to(xb.dtype)

    v, v0 = ab.double() * LEVELS, xb.double() * LEVELS
    nearest = on_grid(torch.round(v))
    toward = on_grid(
        torch.where(
            v > v0 + _TOL,
            torch.ceil(v - _TOL),
            torch.where(v < v0 - _TOL, torch.floor(v + _TOL), torch.round(v)),
        )
    )
    with eval_mode(model):
        logits = _logits(model, ab)
        check_classes(goal, logits.shape[1], "target class" if targeted else "label")
        fooled_float = _is_adversarial(logits.argmax(1), goal, targeted)
        method = ["failed" if f else "not adversarial" for f in fooled_float.tolist()]
        x_q = nearest.clone()
        fooled = _is_adversarial(_predict(model, nearest), goal, targeted)
        for i in fooled.nonzero().flatten().tolist():
            method[i] = "nearest"
        todo = (fooled_float & ~fooled).nonzero().flatten()
        if todo.numel():
            ok = _is_adversarial(_predict(model, toward[todo]), goal[todo], targeted)
            _accept(x_q, fooled, method, todo[ok], toward[todo][ok], "toward perturbation")
        current = toward.clone()
        for k in range(1, steps + 1):
            todo = (fooled_float & ~fooled).nonzero().flatten()
            if not todo.numel():
                break
            grad, _ = gradient_and_logits(
                model, current[todo], goal[todo], targeted, check=False
            )  # goal was checked above
            levels = torch.round(current[todo].double() * LEVELS) + grad.sign().double()
            current[todo] = (
                torch.minimum(torch.maximum(levels, lo[todo]), hi[todo]).div(LEVELS).to(xb.dtype)
            )
            ok = _is_adversarial(_predict(model, current[todo]), goal[todo], targeted)
            _accept(x_q, fooled, method, todo[ok], current[todo][ok], f"gradient step {k}")
    linf = (x_q.double() - xb.double()).abs().flatten(1).amax(1)
    return QuantisedResult(
        x_q=x_q[0] if single else x_q,
        fooled=fooled.cpu(),
        fooled_float=fooled_float.cpu(),
        linf=linf.float().cpu(),
        within_eps=(linf <= eps + _TOL / LEVELS).cpu(),
        method=method,
    )


def _accept(
    x_q: torch.Tensor,
    fooled: torch.Tensor,
    method: list[str],
    idx: torch.Tensor,
    images: torch.Tensor,
    how: str,
) -> None:
    """Record that the images at ``idx`` now fool the model, produced by rule ``how``."""
    if idx.numel():
        x_q[idx] = images
        fooled[idx] = True
        for i in idx.tolist():
            method[i] = how


def quantisation_aware(attack: Attack, *, steps: int = 10) -> Attack:
    """``attack`` followed by :func:`quantise_adversarial`: the result lies on the 1/255 grid
    (it survives a PNG export unchanged) within the eps-ball, and stays adversarial wherever
    the rule there can manage. Same call signature as the wrapped white-box attack; a targeted
    call's ``y`` are its targets, as for the attacks themselves.

    >>> pgd_png = quantisation_aware(pgd)
    >>> x_adv = pgd_png(cnn, x, y, 8 / 255, alpha=1 / 255, steps=20)
    """

    def run(
        model: nn.Module,
        x: torch.Tensor,
        y: Labels,
        eps: float,
        *,
        targeted: bool = False,
        **kwargs,
    ) -> torch.Tensor:
        x_adv = attack(model, x, y, eps, targeted=targeted, **kwargs)
        if targeted:
            result = quantise_adversarial(
                model, x, x_adv, kwargs.get("y_true"), eps, targeted=True, target=y, steps=steps
            )
        else:
            result = quantise_adversarial(model, x, x_adv, y, eps, steps=steps)
        return result.x_q

    run.__name__ = f"quantisation_aware_{getattr(attack, '__name__', 'attack')}"
    run.__doc__ = (
        f"{getattr(attack, '__name__', 'attack')} rounded onto the 1/255 grid by "
        "quantise_adversarial (see quantisation_aware)."
    )
    return run
