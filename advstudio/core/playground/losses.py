"""The GAN losses, one implementation for the 2-D playground and the image GAN.

It lives here, in the lower of the two packages (``core/gan`` may import ``core/playground``,
not the reverse: see the import-linter layers in ``pyproject.toml``), so both labs train with
the same formulas under the same names.

On D's raw output ``r`` (real) and ``f`` (fake), means over the batch:

==================  =========================================  ================================
loss                D minimises                                G minimises
==================  =========================================  ================================
``minimax``         softplus(-r) + softplus(f)                  -softplus(f) = log(1 - D(G(z)))
``non-saturating``  softplus(-r) + softplus(f)                  softplus(-f) = -log D(G(z))
``least-squares``   ((r - 1)^2 + f^2) / 2                       (f - 1)^2 / 2
``hinge``           relu(1 - r) + relu(1 + f)                   -f
``wgan-gp``         f - r  (+ gp_weight * gradient penalty)     -f
==================  =========================================  ================================

softplus(-r) = -log sigmoid(r) is the BCE against 1 (Goodfellow et al. 2014); least squares
with the 0-1 coding of Mao et al. 2017 (LSGAN); hinge as in Miyato et al. 2018 (SN-GAN);
WGAN-GP of Gulrajani et al. 2017 with x_hat = e x + (1 - e) G(z), e ~ U(0, 1) per sample.
``label_smoothing`` (one-sided, Salimans et al. 2016) moves the BCE target of real samples
from 1 to 1 - s; the other losses have no probability target to smooth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.errors import ConfigError

LOSSES = ("minimax", "non-saturating", "least-squares", "hinge", "wgan-gp")
BCE_LOSSES = ("minimax", "non-saturating")


def d_loss_real(kind: str, real_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """The real samples' part of D's loss (every loss here is a real part plus a fake part, so
    a data-parallel D can run its two passes each with its own backward)."""
    if kind in BCE_LOSSES:
        if label_smoothing:  # BCE against 1 - s
            return F.binary_cross_entropy_with_logits(
                real_out, torch.full_like(real_out, 1.0 - label_smoothing)
            )
        return F.softplus(-real_out).mean()
    if kind == "least-squares":
        return 0.5 * ((real_out - 1) ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - real_out).mean()
    if kind == "wgan-gp":
        return -real_out.mean()
    raise ConfigError(f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}.")


def d_loss_fake(kind: str, fake_out: torch.Tensor) -> torch.Tensor:
    """The fake samples' part of D's loss."""
    if kind in BCE_LOSSES:
        return F.softplus(fake_out).mean()
    if kind == "least-squares":
        return 0.5 * (fake_out**2).mean()
    if kind == "hinge":
        return F.relu(1 + fake_out).mean()
    if kind == "wgan-gp":
        return fake_out.mean()
    raise ConfigError(f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}.")


def d_loss(
    kind: str, real_out: torch.Tensor, fake_out: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """D's loss without a gradient penalty (see the module table)."""
    return d_loss_real(kind, real_out, label_smoothing) + d_loss_fake(kind, fake_out)


def g_loss_per_sample(kind: str, fake_out: torch.Tensor) -> torch.Tensor:
    """G's loss of each fake sample (the mean is :func:`g_loss`)."""
    if kind == "minimax":
        return -F.softplus(fake_out)
    if kind == "non-saturating":
        return F.softplus(-fake_out)
    if kind == "least-squares":
        return 0.5 * (fake_out - 1) ** 2
    if kind in ("wgan-gp", "hinge"):
        return -fake_out
    raise ConfigError(f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}.")


def g_loss(kind: str, fake_out: torch.Tensor) -> torch.Tensor:
    """G's loss (see the module table)."""
    return g_loss_per_sample(kind, fake_out).mean()


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Gulrajani et al.'s penalty: the batch mean of (|grad_x critic(x_hat)|_2 - 1)^2, x_hat =
    eps real + (1 - eps) fake, the norm over all of a sample's coordinates (2-D points or C*H*W
    pixels). ``eps`` has one value per sample, shape (n, 1) or (n, 1, 1, 1); ``critic`` may be
    a ``functools.partial`` carrying labels. Differentiable w.r.t. the critic's weights."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(out_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. 2018's R1: the batch mean of |grad_x D(x)|^2 on real samples, where
    ``out_real`` = D(``real``) was computed with ``real.requires_grad_(True)``. D's loss adds
    gamma / 2 times it: it damps D's gradient on the data, where a sharp D makes training
    oscillate. Differentiable w.r.t. D's weights."""
    (grad,) = torch.autograd.grad(out_real.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
