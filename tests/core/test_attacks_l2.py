"""L2 PGD and L2 APGD: the ball holds, and on a linear model PGD reaches the closed-form optimum
``x + eps * w / ||w||_2``."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.autopgd import apgd
from advstudio.core.attacks.l2 import l2_normalise, pgd_l2, project_l2
from advstudio.core.errors import ConfigError
from tests.core.helpers import Logistic
from tests.core.linear import affine


def _norms(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1)


def test_projection_scales_only_what_lies_outside_the_ball():
    x = torch.full((2, 1, 2, 2), 0.5)
    inside = x + torch.tensor([0.1, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    outside = x + 0.2 * torch.ones(1, 1, 2, 2)  # L2 length 0.4
    out = project_l2(torch.cat([inside[:1], outside[:1]]), x, 0.3)
    assert torch.allclose(out[0], inside[0])
    assert torch.allclose(out[1], x[1] + 0.15, atol=1e-6)  # scaled to 0.3
    assert torch.allclose(_norms(l2_normalise(torch.randn(3, 1, 4, 4))), torch.ones(3))


@pytest.mark.parametrize("random_start, steps", [(False, 8), (True, 80)])
def test_pgd_l2_reaches_the_closed_form_optimum_on_a_linear_model(random_start, steps):
    torch.manual_seed(0)
    w = torch.randn(64)
    model = Logistic(w, b=5.0)  # class 1 everywhere near 0.5
    x = torch.full((3, 1, 8, 8), 0.5) + 0.01 * torch.randn(3, 1, 8, 8)
    y = torch.ones(3, dtype=torch.long)
    eps = 1.0
    # from a random start the angle to the optimum shrinks by about eps / (eps + alpha) a step
    x_adv = pgd_l2(
        model,
        x,
        y,
        eps,
        alpha=0.25,
        steps=steps,
        random_start=random_start,
        generator=torch.Generator().manual_seed(1),
    )
    # CE(y=1) = softplus(-z) rises fastest along -w: the optimum is x - eps w / ||w||
    optimum = (x - eps * (w / w.norm()).view(1, 1, 8, 8)).clamp(0, 1)
    assert torch.allclose(x_adv, optimum, atol=1e-4)
    assert bool((_norms(x_adv - x) <= eps + 1e-5).all())


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_l2_stays_in_the_ball_and_the_box(cnn, random_start):
    from advstudio.core.attacks.sweep import sweep_images

    x, y = sweep_images(8, seed=1)
    x_adv = pgd_l2(cnn, x, y, 1.5, alpha=0.3, steps=5, random_start=random_start)
    assert bool((_norms(x_adv - x) <= 1.5 + 1e-4).all())
    assert 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert (cnn(x_adv).argmax(1) != y).sum() >= (cnn(x).argmax(1) != y).sum()


def test_apgd_l2_stays_in_the_ball_and_breaks_a_linear_model_above_the_closed_form():
    model, x, y = affine(classes=4, n=6)
    with torch.no_grad():
        z = model(x)
    # the L2 distance to each other class's boundary: (z_y - z_t) / ||w_t - w_y||
    w = model.weight.detach()
    dist = (z.gather(1, y[:, None]) - z) / (w[None] - w[y][:, None]).norm(dim=2).clamp_min(1e-12)
    dist = dist.scatter(1, y[:, None], float("inf"))
    nearest, target = dist.min(1)
    eps = float(nearest.max()) * 1.05
    x_adv = apgd(model, x, y, eps=eps, steps=50, targeted=True, target=target, norm="L2", seed=0)
    assert bool((_norms(x_adv - x) <= eps + 1e-4).all())
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1), target)
    below = apgd(
        model, x, y, eps=float(nearest.min()) * 0.95, steps=50, loss="dlr", norm="L2", seed=0
    )
    with torch.no_grad():
        assert bool((model(below).argmax(1) == y).all())


def test_bad_norm_and_radius_are_named():
    model, x, y = affine(n=1)
    with pytest.raises(ConfigError, match="unknown APGD norm 'L1'"):
        apgd(model, x, y, eps=1.0, norm="L1")
    with pytest.raises(ConfigError, match="eps \\(an L2 radius\\)"):
        pgd_l2(model, x, y, -1.0, alpha=0.1, steps=1)
