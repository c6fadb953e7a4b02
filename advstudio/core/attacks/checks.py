"""AutoAttack's sanity checks (Croce & Hein 2020, arXiv:2003.01690, and the ``checks.py`` of
their code): signs that a robust accuracy would be overstated, looked for *before* the attacks
run, plus one looked for after.

- :func:`randomness`: two identical forward passes disagree: a randomised defence, whose
  gradients are noisy; attack it with EoT (:mod:`~advstudio.core.attacks.eot`);
- :func:`probabilities`: the outputs already look like probabilities (every entry in [0, 1],
  rows summing to 1): cross-entropy on them saturates, the gradients vanish; give logits;
- :func:`zero_gradients`: some images get an all-zero input gradient: gradient attacks cannot
  move them (masking by a non-differentiable or saturated model);
- :func:`masking`: after the run, a query attack (Square) broke images the gradient attacks
  before it left: the gradients are misleading.

Each returns a :class:`Finding` or None; :func:`before_attacks` runs the first three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core.attacks.whitebox import eval_mode

ATOL = 1e-5  # outputs that differ by more than this between identical passes are random


@dataclass(frozen=True)
class Finding:
    """One warning: ``check`` names it (randomness, probabilities, zero-gradients, masking),
    ``text`` says what was seen and what to do."""

    check: str
    text: str


def randomness(model: nn.Module, x: torch.Tensor) -> Finding | None:
    """Two forward passes of the same batch in eval mode differ by more than :data:`ATOL`."""
    with eval_mode(model), torch.no_grad():
        gap = float((model(x) - model(x)).abs().max())
    if gap <= ATOL:
        return None
    return Finding(
        "randomness",
        f"two identical forward passes differ by up to {gap:.3g}: the "
        "model is randomised; gradient attacks see noise, attack it with EoT",
    )


def probabilities(model: nn.Module, x: torch.Tensor) -> Finding | None:
    """Every output in [0, 1] and every row summing to 1 (within 1e-4)."""
    with eval_mode(model), torch.no_grad():
        out = model(x).float()
    if (
        out.min() < 0
        or out.max() > 1
        or not torch.allclose(out.sum(1), torch.ones(len(out), device=out.device), atol=1e-4)
    ):
        return None
    return Finding(
        "probabilities",
        "the outputs are already probabilities (rows sum to 1): "
        "cross-entropy on them saturates and hides gradients; give the logits",
    )


def zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Finding | None:
    """Some image's cross-entropy gradient with respect to its pixels is exactly zero (or the
    output does not depend on the input at all)."""
    xg = x.detach().clone().requires_grad_(True)
    with eval_mode(model):
        loss = nn.functional.cross_entropy(model(xg), y, reduction="sum")
    if not loss.requires_grad:
        zero = len(x)
    else:
        (grad,) = torch.autograd.grad(loss, xg)
        zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
    if zero == 0:
        return None
    return Finding(
        "zero-gradients",
        f"{zero} of {len(x)} images have a zero input gradient: "
        "gradient attacks cannot move them (gradient masking); trust the query "
        "attacks' numbers, or fix the model",
    )


def masking(
    broken: Mapping[str, int], gradient: Iterable[str], query: Iterable[str]
) -> Finding | None:
    """A query attack run after gradient attacks broke images they all left (``broken``: how
    many each attack was the first to break)."""
    order = list(broken)
    gradient = set(gradient)
    first = next((i for i, name in enumerate(order) if name in gradient), None)
    if first is None:
        return None
    late = {q: broken[q] for q in order[first + 1 :] if q in set(query) and broken[q] > 0}
    if not late:
        return None
    names = ", ".join(f"{q} ({n})" for q, n in late.items())
    return Finding(
        "masking",
        f"{names} broke images the gradient attacks left: a sign of "
        "gradient masking; the gradient attacks alone would overstate robustness",
    )


def before_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[Finding]:
    """The three checks that need no attack, on a batch ``x`` (N, C, H, W) in [0, 1]."""
    found = (randomness(model, x), probabilities(model, x), zero_gradients(model, x, y))
    return [f for f in found if f is not None]
