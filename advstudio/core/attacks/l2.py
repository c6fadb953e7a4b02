"""L2 geometry for the gradient attacks: normalised steps, the L2 ball, L2 PGD.

The L-inf attacks step along ``sign(grad)`` and clamp into a box; their L2 versions step along
``grad / ||grad||_2`` and scale back onto the ball ``||x' - x||_2 <= eps``, then clip to [0, 1]
(the usual order: ball, then box; not the exact projection onto their intersection, which
matters only for pixels at the box edges). :func:`~advstudio.core.attacks.autopgd.apgd` uses the
same helpers for ``norm="L2"``.

Units: pixels in [0, 1]; ``eps`` and ``alpha`` are L2 lengths over all pixel values (channels
included), so they grow with the image: ``eps = 2.0`` on 28 x 28 digits is a mean change of
about 0.07 per pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.attacks.minimal import check_positive
from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    ascent_gradient,
    check_images,
    check_steps,
    check_targets,
    eval_mode,
)


def _per_image(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


def l2_normalise(g: torch.Tensor) -> torch.Tensor:
    """Each image's ``g / ||g||_2`` (a zero ``g`` stays zero)."""
    return g / _per_image(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale ``x_adv - x`` down onto the L2 ball of radius ``eps`` where it lies outside, then
    clip to [0, 1]."""
    delta = x_adv - x
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = _per_image((eps / norm).clamp(max=1.0), delta)
    return (x + delta * scale).clamp_(0.0, 1.0)


def l2_sphere_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """A random point at L2 distance ``eps`` (before clipping) in a uniformly random direction:
    Gaussian noise normalised (AutoAttack's L2 start)."""
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (x + eps * l2_normalise(noise)).clamp_(0.0, 1.0)


def check_radius(eps: float, name: str = "eps") -> float:
    """An L2 radius: a finite number >= 0 (it may exceed 1; it is summed over pixels)."""
    return check_positive(eps, f"{name} (an L2 radius)", allow_zero=True)


def pgd_l2(
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
    """Projected Gradient Descent, L2 (Madry et al. 2018, arXiv:1706.06083).

    ``x' <- project_l2(x' + alpha * g / ||g||_2)`` for ``steps`` steps, ``g`` the gradient of
    ``CE(f(x'), y)`` (targeted: of ``-CE(f(x'), t)``). ``random_start``: begin at a random
    point of the sphere of radius ``eps`` (drawn with ``generator``). A common setting is
    ``alpha = eps / 4`` (with 10+ steps the iterate can cross the ball twice, then settle).
    On a linear model the result is ``x + eps * w / ||w||_2`` (clipped): the ball's point
    furthest along the gradient.

    >>> x_adv = pgd_l2(cnn, x, y, eps=2.0, alpha=0.5, steps=20)
    """
    eps = check_radius(eps)
    alpha = check_positive(alpha, "alpha (step size)")
    steps = check_steps(steps)
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if targeted:
        check_targets(labels, y_true)
    with eval_mode(model):
        x_adv = l2_sphere_start(xb, eps, generator) if random_start else xb
        for step in range(steps):
            grad = ascent_gradient(model, x_adv, labels, targeted, check=step == 0)
            x_adv = project_l2(x_adv + alpha * l2_normalise(grad), xb, eps)
    x_adv = x_adv.detach()
    return x_adv[0] if single else x_adv
