"""Expectation over Transformation (EoT; Athalye, Engstrom, Ilyas & Kwok 2018, "Synthesizing
robust adversarial examples", arXiv:1707.07397; used against randomised defences in Athalye,
Carlini & Wagner 2018, arXiv:1802.00420).

A randomised defence ``f(t(x))``, ``t`` drawn anew per call, gives a different gradient on
each pass; one of them is a poor direction. EoT follows the gradient of the *expected* loss,
estimated by the average of ``samples`` per-draw gradients:
``g = 1/K sum_k grad_x L(f(t_k(x)), y)``.

:func:`eot_gradient` is that average; :func:`eot_pgd` is L-inf PGD (Madry et al. 2018) along
``sign(g)``. Both draw the defence's randomness from torch's global generator, seeded with
``seed`` inside :func:`torch.random.fork_rng`, so a run is reproducible and the caller's random
state is left as it was. Pixels in [0, 1]; eval mode restored on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    ascent_gradient,
    check_alpha,
    check_eps,
    check_images,
    check_steps,
    eval_mode,
    project,
)

DEFAULT_SAMPLES = 10  # draws per gradient: Athalye et al. used 30 on ImageNet; 10 on digits


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global generators (CPU, and ``device``'s if CUDA) seeded with ``seed`` inside,
    restored on exit."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _average(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, samples: int, targeted: bool
) -> torch.Tensor:
    total = torch.zeros_like(x)
    for k in range(samples):
        total += ascent_gradient(model, x, labels, targeted, check=k == 0)
    return total / samples


def eot_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    samples: int = DEFAULT_SAMPLES,
    targeted: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """The EoT gradient of the cross-entropy (ascent direction: minus it when ``targeted``),
    ``samples`` forward-backward passes of ``model`` on ``x`` (N, C, H, W) in [0, 1]."""
    samples = check_steps(samples, "samples")
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model), seeded(seed, xb.device):
        g = _average(model, xb, labels, samples, targeted)
    return g[0] if single else g


def eot_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    alpha: float,
    steps: int,
    samples: int = DEFAULT_SAMPLES,
    targeted: bool = False,
    random_start: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """EoT-PGD: ``steps`` sign steps of ``alpha`` along the EoT gradient (``samples`` draws
    each, so ``steps * samples`` backward passes), projected onto the L-inf ``eps``-ball and
    [0, 1], from a uniform random start. ``samples=1`` is plain PGD on the random model.

    >>> x_adv = eot_pgd(defended(cnn, GaussianNoise(0.25)), x, y, 0.2, alpha=0.02, steps=20)
    """
    eps, alpha = check_eps(eps), check_alpha(alpha)
    steps, samples = check_steps(steps), check_steps(samples, "samples")
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model), seeded(seed, xb.device):
        x_adv = xb
        if random_start:
            x_adv = (xb + (2 * torch.rand_like(xb) - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            g = _average(model, x_adv, labels, samples, targeted)
            x_adv = project(x_adv + alpha * g.sign(), xb, eps)
    x_adv = x_adv.detach()
    return x_adv[0] if single else x_adv
