"""An attack on the smoothed classifier: the upper-bound side of randomised smoothing.

SmoothAdv's PGD (Salman et al. 2019, "Provably robust deep learning via adversarially trained
smoothed classifiers", arXiv:1906.04584): the smoothed soft classifier
``G(x) = E_d[softmax(f(x + d))]``, ``d ~ N(0, sigma^2 I)``, is attacked by L2 PGD on
``-log G(x')_y`` with ``G`` estimated from ``samples`` noise draws per step (Monte-Carlo
gradients; the same draws for the loss and its gradient). A point it finds inside the certified
radius that changes the smoothed prediction would contradict the certificate, so the gap between
its radius and the certified one measures how tight the certificate is.

Units: pixels in [0, 1], ``eps`` and ``alpha`` are L2 lengths over all pixel values; the
iterate is clipped to [0, 1] after every step (the noise is not).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advstudio.core.attacks.whitebox import eval_mode

_TINY = 1e-12


def _l2_normalise(g: torch.Tensor) -> torch.Tensor:
    norms = g.flatten(1).norm(dim=1).clamp_min(_TINY)
    return g / norms.view(-1, *([1] * (g.dim() - 1)))


def _project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norms = delta.flatten(1).norm(dim=1).clamp_min(_TINY)
    factor = (eps / norms).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def smoothed_log_prob(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per image, ``log G(x)_y`` estimated from ``samples`` noisy copies of each image of
    ``x`` (N, C, H, W): ``logsumexp_i log_softmax(f(x + d_i))_y - log samples``. Differentiable
    in ``x``; one forward pass of ``N * samples`` images."""
    n = len(x)
    noise = torch.randn(
        (n, samples, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
    )
    noisy = (x.unsqueeze(1) + sigma * noise).flatten(0, 1)
    log_p = torch.log_softmax(model(noisy), dim=1).view(n, samples, -1)
    log_py = log_p.gather(2, y.view(n, 1, 1).expand(n, samples, 1)).squeeze(2)
    return torch.logsumexp(log_py, dim=1) - math.log(samples)


def smooth_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    alpha: float,
    steps: int,
    sigma: float,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """SmoothAdv PGD, L2 (Salman et al. 2019): ``steps`` steps of length ``alpha`` along the
    normalised Monte-Carlo gradient of ``-log G(x')_y``, projected onto the L2 ball of radius
    ``eps`` around ``x`` and clipped to [0, 1]; starts at ``x``. ``y``: the labels (or the
    smoothed predictions) to move away from. Returns detached images of ``x``'s shape; the
    model runs in eval mode (restored afterwards) and no parameter ``.grad`` is touched.

    >>> x_adv = smooth_pgd(cnn, x, y, eps=0.5, alpha=0.1, steps=10, sigma=0.25, samples=32,
    ...                    generator=torch.Generator().manual_seed(0))
    """
    x = x.detach()
    x_adv = x.clone()
    with eval_mode(model), torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = -smoothed_log_prob(model, x_adv, y, sigma, samples, generator).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
            step = x_adv.detach() + alpha * _l2_normalise(grad)
            x_adv = (x + _project_l2(step - x, eps)).clamp(0.0, 1.0)
    return x_adv.detach()
