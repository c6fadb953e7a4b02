"""Linear classifiers with closed-form decision boundaries, and spies on how a model is used."""

from __future__ import annotations

import torch
from torch import nn


class Affine(nn.Module):
    """``logits = W x + b`` on flattened images: every boundary is a hyperplane."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def affine(
    classes: int = 3, side: int = 6, n: int = 4, seed: int = 0
) -> tuple[Affine, torch.Tensor, torch.Tensor]:
    """A random linear model over ``side x side`` grey images, ``n`` images near 0.5 and the
    classes it gives them (so minimal perturbations stay well inside [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, side * side, generator=gen)
    model = Affine(weight, torch.zeros(classes))
    x = 0.5 + 0.05 * torch.rand(n, 1, side, side, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def boundary(
    model: Affine, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the margin ``z_y - z_t`` (> 0) and ``w_t - w_y``: the hyperplane between the
    two classes is ``margin = (w_t - w_y) . delta`` away from ``x``."""
    with torch.no_grad():
        z = model(x)
        gap = z.gather(1, y[:, None])[:, 0] - z.gather(1, t[:, None])[:, 0]
        dw = model.weight[t] - model.weight[y]
    return gap, dw


class BackwardRaises(torch.autograd.Function):
    """Identity whose backward raises: a model behind it cannot be differentiated."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("a gradient was asked of a score-only target")


class ScoresOnly(nn.Module):
    """Wraps a model: asserts autograd is off at each query and counts the images sent."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "the target was queried with autograd enabled"
        self.images += len(x)
        return self.model(BackwardRaises.apply(x))
