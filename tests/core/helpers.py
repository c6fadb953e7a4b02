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


def toy_attack():
    """A catalogue entry for a made-up attack that lifts every pixel by ``lift * eps`` (then
    clips to [0, 1]): a closed form to check the lab, the sweep and robust accuracy against.
    Offered white-box and by transfer, in all three contexts."""
    from advstudio.core.attacks.catalogue import Access, AttackEntry, AttackRun, Param, Use

    def run(model, x, y, params, *, target=None, generator=None, seed=0):
        return AttackRun((x + params["lift"] * params["eps"]).clamp(0, 1))

    params = (
        Param("eps", 0.1, 0.0, 1.0, "pixels [0, 1]", "L∞ radius"),
        Param("lift", 1.0, 0.0, 1.0, "× eps", "how much of eps to add"),
    )
    return AttackEntry(
        "toy",
        "Toy (lift every pixel)",
        "Toy",
        (Access.WHITEBOX, Access.TRANSFER),
        "Linf",
        params,
        run,
        ("0", "0"),
        {"lab": Use(), "sweep": Use(label="Toy-1"), "robust": Use()},
    )


def abort_in_forward(conn, request) -> None:
    """A model probe's child process (the ``target`` of
    :func:`advstudio.core.models.isolation.probe_in_child`) that dies of SIGABRT as its first
    forward pass starts, as a crash in a model's native code would."""
    import os

    from advstudio.core.models import isolation, probe

    real = probe.watching_forwards

    def watching(report):
        def crash(what, shape):
            report(what, shape)
            if what == "start":
                os.abort()

        return real(crash)

    probe.watching_forwards = watching
    isolation.child_main(conn, request)
