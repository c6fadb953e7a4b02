"""The TRADES training loss (Zhang et al. 2019, "Theoretically principled trade-off between
robustness and accuracy", arXiv:1901.08573).

``CE(f(x), y) + beta * KL(p(x) || p(x'))`` with ``p = softmax(f)`` and ``x'`` the point of the
L-inf ball of radius ``eps`` around ``x`` (in [0, 1]) that maximises the KL term, found by PGD
from ``x + 0.001 * N(0, 1)`` as in the authors' code. ``beta`` trades accuracy (0: plain
cross-entropy) for smoothness of the decision function around the data (the paper uses 6 on
MNIST and CIFAR-10). KL is summed over classes and averaged over the batch (the authors'
``KLDivLoss(size_average=False) / batch_size``).

The inner maximisation runs the model in eval mode (restored afterwards, as the authors' code
switches ``model.eval()`` around it); the loss itself runs in the caller's mode, so a trainer
calls it in train mode and back-propagates it.

Units: pixels in [0, 1], ``eps`` and ``step_size`` in the same scale (L-inf).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.whitebox import eval_mode

START_SCALE = 0.001
"""Standard deviation of the random start (the authors' ``0.001 * randn``): the KL term's
gradient is exactly 0 at ``x' = x``, so PGD must start off it."""


def kl_divergence(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(clean) || softmax(adv))`` summed over classes, averaged over the batch."""
    return F.kl_div(
        F.log_softmax(logits_adv, dim=1),
        F.log_softmax(logits_clean, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def trades_adversary(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TRADES' inner maximisation: ``steps`` signed-gradient steps of ``step_size`` on
    ``KL(p(x) || p(x'))``, projected onto the L-inf ``eps`` ball and [0, 1]. Needs no labels.
    Eval mode, no parameter ``.grad`` touched; returns detached images."""
    x = x.detach()
    with eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            target = model(x)
        start = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + START_SCALE * start).clamp(0.0, 1.0)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(kl_divergence(target, model(x_adv)), x_adv)
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


def trades_objective(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, beta: float
) -> torch.Tensor:
    """``CE(f(x), y) + beta * KL(p(x) || p(x_adv))`` for a given ``x_adv``, gradients flowing
    through both passes (as in the paper, the clean distribution is not detached)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    if beta == 0:
        return loss
    return loss + beta * kl_divergence(logits, model(x_adv))


def trades_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    beta: float = 6.0,
    eps: float = 0.3,
    step_size: float = 0.01,
    steps: int = 40,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The TRADES loss of a batch: :func:`trades_adversary` then :func:`trades_objective`.
    Defaults are the paper's MNIST setting (eps 0.3, 40 steps of 0.01, beta 6)."""
    x_adv = (
        x
        if beta == 0
        else trades_adversary(
            model, x, eps=eps, step_size=step_size, steps=steps, generator=generator
        )
    )
    return trades_objective(model, x, x_adv, y, beta)
