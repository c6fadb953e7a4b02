"""FAB-T: on a linear model it finds the closed-form minimal perturbation, its projection is
exact, and on the CNN it flips images with small perturbations."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.fab import fab_t, project_hyperplane
from advstudio.core.errors import ConfigError
from tests.core.linear import affine, boundary


def test_the_projection_is_the_closed_form_inside_the_box_and_clamps_at_its_edges():
    g = torch.tensor([[3.0, -1.0, 0.0, 2.0]])
    c = torch.tensor([1.2])
    lo, hi = torch.full_like(g, -1.0), torch.full_like(g, 1.0)
    d_inf = project_hyperplane(g, c, lo, hi, "Linf")
    assert torch.allclose(d_inf, 1.2 / 6 * torch.tensor([[1.0, -1.0, 0.0, 1.0]]))
    d_2 = project_hyperplane(g, c, lo, hi, "L2")
    assert torch.allclose(d_2, 1.2 / 14 * g)
    # a tight box on the first pixel: the others make up the rest, g . d still equals c
    lo, hi = torch.full_like(g, -1.0), torch.tensor([[0.1, 1.0, 1.0, 1.0]])
    for norm in ("Linf", "L2"):
        d = project_hyperplane(g, c, lo, hi, norm)
        assert float(d[0, 0]) == pytest.approx(0.1)
        assert float((g * d).sum()) == pytest.approx(1.2, rel=1e-5)
    # out of reach: the box corner that gets closest
    d = project_hyperplane(g, torch.tensor([-100.0]), lo, hi, "L2")
    assert torch.allclose(d, torch.tensor([[-1.0, 1.0, 0.0, -1.0]]))


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_on_a_linear_model_it_finds_the_closed_form_minimal_perturbation(norm):
    model, x, y = affine(classes=3, n=4)
    t = (y + 1) % 3
    gap, dw = boundary(model, x, y, t)
    x_adv = fab_t(model, x, y, norm=norm, target=t, steps=100)
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1), t)
    delta = (x_adv - x).flatten(1)
    if norm == "Linf":  # |margin| / ||w_t - w_y||_1 along sign(w_t - w_y)
        size = gap / dw.abs().sum(1)
        assert torch.allclose(delta.abs().amax(1), size, rtol=0.01)
        assert torch.allclose(delta, size[:, None] * dw.sign(), atol=0.01 * float(size.max()))
    else:  # |margin| / ||w_t - w_y||_2 along w_t - w_y
        size = gap / dw.norm(dim=1)
        assert torch.allclose(delta.norm(dim=1), size, rtol=0.01)
        assert torch.allclose(
            delta, size[:, None] * dw / dw.norm(dim=1, keepdim=True), atol=0.01 * float(size.max())
        )
    # never below the minimum: that would contradict the closed form
    found = delta.norm(dim=1) if norm == "L2" else delta.abs().amax(1)
    assert bool((found >= size * 0.999).all())


def test_fab_t_over_the_top_classes_flips_the_cnn_with_small_perturbations(cnn):
    from advstudio.core.attacks.minimal import deepfool
    from advstudio.core.attacks.sweep import sweep_images

    x, y = sweep_images(6, seed=2)
    x_adv = fab_t(cnn, x, y, norm="L2", steps=20, target_classes=3)
    with torch.no_grad():
        flipped = cnn(x_adv).argmax(1) != y
        clean_right = cnn(x).argmax(1) == y
    assert bool(flipped[clean_right].all())
    # as small as DeepFool's (the usual minimal-L2 reference), within a margin
    fool = deepfool(cnn, x[clean_right], y=y[clean_right])
    fab_l2 = (x_adv - x)[clean_right].flatten(1).norm(dim=1)
    df_l2 = (fool - x[clean_right]).flatten(1).norm(dim=1)
    assert float(fab_l2.median()) <= 1.2 * float(df_l2.median())


def test_bad_settings_are_named():
    model, x, y = affine(n=1)
    with pytest.raises(ConfigError, match="unknown FAB norm 'L1'"):
        fab_t(model, x, y, norm="L1")
    with pytest.raises(ConfigError, match="target_classes"):
        fab_t(model, x, y, target_classes=5)
    with pytest.raises(ConfigError, match="target class"):
        fab_t(model, x, y, target=y)


def test_fab_t_linf_needs_less_linf_than_fgsm_on_the_cnn(cnn):
    from advstudio.core.attacks.metrics import minimal_epsilons
    from advstudio.core.attacks.sweep import sweep_images

    x, y = sweep_images(6, seed=2)
    with torch.no_grad():
        right = cnn(x).argmax(1) == y
    x, y = x[right], y[right]
    x_adv = fab_t(cnn, x, y, norm="Linf", steps=20, target_classes=3)
    with torch.no_grad():
        assert bool((cnn(x_adv).argmax(1) != y).all())
    fab = (x_adv - x).flatten(1).abs().amax(1)
    fgsm = torch.tensor([e if e is not None else 1.0 for e in minimal_epsilons(cnn, x, y)])
    assert float(fab.median()) < float(fgsm.median())
