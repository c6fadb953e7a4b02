"""Small models and measures shared by the engine's tests."""

from __future__ import annotations

import torch
from torch import nn


class Logistic(nn.Module):
    """Binary logistic regression as two logits ``[0, w.x + b]``: CE(y=1) = softplus(-z)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


class NoGradLinear(nn.Module):
    """A linear digit classifier run under ``no_grad``: no gradient reaches its input."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.lin(x.flatten(1))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` that ``model`` classifies as ``y`` (no gradient)."""
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())
