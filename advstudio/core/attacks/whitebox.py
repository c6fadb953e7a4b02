"""White-box L-inf attacks of the FGSM family, on images in [0, 1].

Units: pixels are in [0, 1] and ``eps`` / ``alpha`` are on the same scale (``eps=8/255`` is eight
grey levels). Every attack takes a batch (N, C, H, W) or one image (C, H, W), runs on the device of
``x`` (the model must be there too), clips to [0, 1] after every step and returns a detached tensor
of the same shape and dtype.

Everything the attacks share lives here once:

- :func:`eval_mode` puts the model in eval mode and restores every submodule's flag in
  ``try/finally`` (dropout off, BatchNorm running statistics untouched);
- :func:`gradient_and_logits` is the only place that differentiates: ``torch.autograd.grad`` w.r.t.
  the input only, so no parameter ``.grad`` is ever accumulated; and the only place that knows
  the targeted sign (untargeted attacks climb ``CE(f(x), y)``, targeted ones climb
  ``-CE(f(x), t)``);
- the ``check_*`` helpers validate hyper-parameters and labels with :class:`ConfigError` messages
  that name the bad value and the allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.errors import AttackError, ConfigError

Labels = torch.Tensor | int | Sequence[int]
Attack = Callable[..., torch.Tensor]

_NO_GRADIENT = (
    "the model gives no gradient with respect to its input (its output does not require grad: "
    "a TorchScript model frozen under no_grad, a non-differentiable layer, or a remote API?). "
    "Use a black-box attack instead (transfer, NES/SPSA or SimBA)."
)


# --------------------------------------------------------------------------- validation


def check_eps(eps: float, name: str = "eps") -> float:
    """``eps`` as a float, or :class:`ConfigError` unless it is in [0, 1] (pixel scale)."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1] (pixel scale), not {eps!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ConfigError(f"{name} must be in [0, 1] (pixels are in [0, 1]), not {value:g}")
    return value


def check_alpha(alpha: float) -> float:
    """The step size: a finite number > 0 (pixel scale)."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha (step size) must be a number > 0, not {alpha!r}") from None
    if not (value > 0.0 and math.isfinite(value)):
        raise ConfigError(f"alpha (step size) must be > 0 (pixel scale), not {value:g}")
    return value


def check_steps(steps: int, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, not {steps!r}")
    return steps


def check_images(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(N, C, H, W) float images in [0, 1]; a single (C, H, W) image becomes a batch of one.

    Returns the batch and whether the caller gave a single image (to squeeze the result back).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ConfigError(
            f"images must be a float tensor in [0, 1], not {type(x).__name__} "
            f"{getattr(x, 'dtype', '')}"
        )
    single = x.dim() == 3
    if single:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] == 0:
        raise ConfigError(f"images must have shape (N, C, H, W) or (C, H, W), not {tuple(x.shape)}")
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # one device sync
    if lo < 0.0 or hi > 1.0:
        raise ConfigError(f"pixel values must be in [0, 1]; these range over [{lo:g}, {hi:g}]")
    return x.detach(), single


def as_labels(y: Labels, n: int, device: torch.device) -> torch.Tensor:
    """Class indices as an int64 tensor of length ``n`` (a single label is repeated)."""
    labels = torch.as_tensor(y, device=device).reshape(-1).long()
    if labels.numel() == 1 and n > 1:
        labels = labels.expand(n)
    if labels.numel() != n:
        raise ConfigError(f"got {labels.numel()} labels for {n} images")
    return labels


def check_classes(labels: torch.Tensor, num_classes: int, what: str = "class") -> None:
    """Every label in [0, num_classes), else a :class:`ConfigError` naming the first bad one."""
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ConfigError(
            f"{what} {int(bad[0])} is out of range: this model has {num_classes} "
            f"classes, so it must be in [0, {num_classes - 1}]"
        )


def check_targets(target: torch.Tensor, y_true: Labels | None) -> None:
    """A targeted attack's target must differ from the true class where that is known."""
    if y_true is None:
        return
    true = as_labels(y_true, len(target), target.device)
    same = (true == target).nonzero()
    if same.numel():
        i = int(same[0, 0])
        raise ConfigError(
            f"target class {int(target[i])} is the true class of image {i}: a "
            "targeted attack needs a different target class"
        )


# --------------------------------------------------------------------------- shared machinery


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration of the block; every submodule's own training flag is restored
    afterwards, also when the block raises (torchattacks restores it outside ``finally``)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def gradient_and_logits(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool, *, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """d objective / d x, the direction every attack here steps along, and the (detached)
    logits of ``x`` that came with it for free.

    objective = ``CE(f(x), labels)`` (untargeted: move away from the true class) or
    ``-CE(f(x), labels)`` (targeted: move towards the target). Summed over the batch so each
    image's gradient is its own. Call inside :func:`eval_mode`. ``check=False`` skips the
    label range check (a device sync): for the later steps of a loop whose first step checked.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise AttackError(
                f"the model must return (N, classes) logits, not "
                f"{getattr(logits, 'shape', type(logits).__name__)}"
            )
        if check:
            check_classes(labels, logits.shape[1], "target class" if targeted else "label")
        if not logits.requires_grad:
            raise AttackError(_NO_GRADIENT)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x, allow_unused=True)
    if grad is None:
        raise AttackError(_NO_GRADIENT)
    return grad, logits.detach()


def ascent_gradient(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool, *, check: bool = True
) -> torch.Tensor:
    """:func:`gradient_and_logits` without the logits."""
    return gradient_and_logits(model, x, labels, targeted, check=check)[0]


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Back into the L-inf ball of radius ``eps`` around ``x``, then into [0, 1]."""
    return torch.clamp(x_adv, x - eps, x + eps).clamp_(0.0, 1.0)


def _attack(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    targeted: bool,
    y_true: Labels | None,
    body: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> torch.Tensor:
    """Validate, batch, eval mode, run ``body(x, labels, eps)``, restore the caller's shape."""
    eps = check_eps(eps)
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if targeted:
        check_targets(labels, y_true)
    with eval_mode(model):
        out = body(xb, labels, eps).detach()
    return out[0] if single else out


def _iterate(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    targeted: bool,
    start: torch.Tensor,
    decay: float | None = None,
) -> torch.Tensor:
    """The loop BIM, PGD and MI-FGSM share: sign step of size ``alpha``, project, repeat.
    The labels are range-checked at the first step only (they do not change)."""
    x_adv = start
    momentum = torch.zeros_like(x) if decay is not None else None
    for step in range(steps):
        grad = ascent_gradient(model, x_adv, labels, targeted, check=step == 0)
        if momentum is not None:
            l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
            momentum = decay * momentum + grad / l1
            grad = momentum
        x_adv = project(x_adv + alpha * grad.sign(), x, eps)
    return x_adv


# --------------------------------------------------------------------------- attacks


def fgsm_direction(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    targeted: bool = False,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """The FGSM step direction: ``sign(grad)`` of the objective (values -1, 0, +1).

    Cache it and call :func:`apply_direction` for each epsilon: an epsilon slider then costs one
    forward pass per move instead of a backward pass.
    """

    def body(xb: torch.Tensor, labels: torch.Tensor, _eps: float) -> torch.Tensor:
        return ascent_gradient(model, xb, labels, targeted).sign().to(xb.dtype)

    return _attack(model, x, y, 0.0, targeted, y_true, body)


def apply_direction(x: torch.Tensor, direction: torch.Tensor, eps: float) -> torch.Tensor:
    """``clip(x + eps * direction, 0, 1)``: one FGSM image from a cached direction."""
    eps = check_eps(eps)
    return (x.detach() + eps * direction).clamp_(0.0, 1.0)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    targeted: bool = False,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015, arXiv:1412.6572). Norm: L-inf.

    Untargeted (``y`` = true labels): ``x' = clip(x + eps * sign(grad_x CE(f(x), y)))``.
    Targeted (``y`` = target classes): ``x' = clip(x - eps * sign(grad_x CE(f(x), y)))``;
    pass ``y_true`` to have a target equal to the true class rejected.

    >>> x_adv = fgsm(model, x, y, eps=0.1)
    >>> (model(x_adv).argmax(1) != y).float().mean()   # success rate
    """

    def body(xb: torch.Tensor, labels: torch.Tensor, e: float) -> torch.Tensor:
        return apply_direction(xb, ascent_gradient(model, xb, labels, targeted).sign(), e)

    return _attack(model, x, y, eps, targeted, y_true, body)


def bim(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    alpha: float,
    steps: int,
    targeted: bool = False,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """Basic Iterative Method / I-FGSM (Kurakin et al. 2017, arXiv:1607.02533). Norm: L-inf.

    ``steps`` FGSM steps of size ``alpha`` from ``x`` itself, each projected onto the eps-ball
    and [0, 1]. A common choice is ``alpha = eps / 4``, ``steps = 10``.

    >>> x_adv = bim(model, x, y, eps=0.1, alpha=0.025, steps=10)
    """
    alpha, steps = check_alpha(alpha), check_steps(steps)

    def body(xb: torch.Tensor, labels: torch.Tensor, e: float) -> torch.Tensor:
        return _iterate(model, xb, labels, e, alpha, steps, targeted, xb)

    return _attack(model, x, y, eps, targeted, y_true, body)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    alpha: float,
    steps: int,
    random_start: bool = True,
    targeted: bool = False,
    generator: torch.Generator | None = None,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al. 2018, arXiv:1706.06083). Norm: L-inf.

    BIM from a uniformly random start in the eps-ball (``random_start=True``; drawn with
    ``generator`` if given, for reproducible runs). The reference setting is PGD-20:
    ``steps=20``, ``alpha=eps/10``.

    >>> x_adv = pgd(model, x, y, eps=0.1, alpha=0.01, steps=20)
    """
    alpha, steps = check_alpha(alpha), check_steps(steps)

    def body(xb: torch.Tensor, labels: torch.Tensor, e: float) -> torch.Tensor:
        start = xb
        if random_start:
            device = generator.device if generator is not None else xb.device
            noise = torch.rand(xb.shape, generator=generator, device=device, dtype=xb.dtype)
            start = (xb + (2 * noise.to(xb.device) - 1) * e).clamp_(0.0, 1.0)
        return _iterate(model, xb, labels, e, alpha, steps, targeted, start)

    return _attack(model, x, y, eps, targeted, y_true, body)


def mifgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    alpha: float,
    steps: int,
    decay: float = 1.0,
    targeted: bool = False,
    y_true: Labels | None = None,
) -> torch.Tensor:
    """Momentum Iterative FGSM (Dong et al. 2018, arXiv:1710.06081). Norm: L-inf.

    Accumulates ``g = decay * g + grad / ||grad||_1`` (per image) and steps along ``sign(g)``;
    the momentum makes the examples transfer better to other models. Paper defaults:
    ``decay=1.0``, ``steps=10``, ``alpha=eps/steps``.

    >>> x_adv = mifgsm(model, x, y, eps=0.1, alpha=0.01, steps=10)
    """
    alpha, steps = check_alpha(alpha), check_steps(steps)
    try:
        decay = float(decay)
    except (TypeError, ValueError):
        raise ConfigError(f"decay must be a number >= 0, not {decay!r}") from None
    if not (decay >= 0.0 and math.isfinite(decay)):
        raise ConfigError(f"decay must be >= 0, not {decay:g}")

    def body(xb: torch.Tensor, labels: torch.Tensor, e: float) -> torch.Tensor:
        return _iterate(model, xb, labels, e, alpha, steps, targeted, xb, decay=decay)

    return _attack(model, x, y, eps, targeted, y_true, body)
