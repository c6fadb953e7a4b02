"""APGD: the losses' closed forms, the step schedule on a linear model, strength against PGD
on the built-in CNN, invariants and messages."""

from __future__ import annotations

import importlib

import pytest
import torch

from advstudio.core.attacks import apgd, dlr_loss, pgd, targeted_dlr_loss
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import AttackError, ConfigError
from tests.core.helpers import Logistic, NoGradLinear, accuracy

# the package re-exports the function apgd, which hides the module of the same name
apgd_module = importlib.import_module("advstudio.core.attacks.autopgd")


@pytest.fixture(scope="module")
def digits():
    return sweep_images(100, seed=0)


def test_dlr_losses_closed_form_and_invariance():
    z = torch.tensor([[5.0, 3.0, 1.0, 0.0], [1.0, 4.0, 2.0, -1.0]])
    y = torch.tensor([0, 0])
    # image 0 right: -(5 - 3) / (5 - 1); image 1 wrong: -(1 - 4) / (4 - 1)
    assert torch.allclose(dlr_loss(z, y), torch.tensor([-0.5, 1.0]))
    assert torch.allclose(dlr_loss(3 * z + 7, y), dlr_loss(z, y))  # shift and scale
    t = torch.tensor([2, 3])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    expected = torch.tensor([-(5 - 1) / (5 - 0.5), -(1 + 1) / (4 - 0.0)])
    assert torch.allclose(targeted_dlr_loss(z, y, t), expected)
    assert torch.allclose(targeted_dlr_loss(2 * z - 1, y, t), expected)


def test_apgd_on_a_linear_model_goes_to_the_loss_maximising_corner():
    """Too small an eps to flip it: the CE-maximising point of the ball is the corner
    ``x - eps * sign(w)`` (clipped); the first step (2 eps) lands there and APGD stays."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=gen)
    x = torch.rand(5, 1, 4, 4, generator=gen)
    model = Logistic(w, 10.0 - float(x.flatten(1).mean(0) @ w))  # all class 1, margin ~10
    y = torch.ones(5, dtype=torch.long)
    corner = (x - 0.05 * torch.sign(w).view(1, 1, 4, 4)).clamp(0, 1)
    out = apgd(model, x, y, eps=0.05, steps=10, seed=0)
    assert torch.allclose(out, corner, atol=1e-6)


def test_step_halves_at_each_checkpoint_when_progress_stalls(monkeypatch):
    """At the loss-maximising corner the loss never rises, so every checkpoint halves the step.
    With 50 steps the checkpoint intervals are 11, 10, 9, 8, 7 steps (22 % of the steps, then
    3 % shorter each time): the steps are 2 eps x 11, eps x 10, eps/2 x 9, eps/4 x 8, eps/8 x 7
    and eps/16 for the last 5. Read off the gradient steps APGD projects: |x_cur + step - x|
    is eps + step at an unclipped pixel of the corner."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=gen)
    x = 0.2 + 0.6 * torch.rand(3, 1, 4, 4, generator=gen)
    model = Logistic(w, 10.0 - float(x.flatten(1).mean(0) @ w))
    eps = 0.05
    calls = []
    real_project = apgd_module.project

    def spy(x_adv, x0, radius):
        calls.append(float((x_adv - x0).abs().amax()))
        return real_project(x_adv, x0, radius)

    monkeypatch.setattr(apgd_module, "project", spy)
    apgd(model, x, torch.ones(3, dtype=torch.long), eps=eps, steps=50, seed=0)
    # calls: the random start, then per step the gradient step and the momentum step
    gradient_steps = [c - eps for c in calls[1::2]]
    expected = (
        [2 * eps] * 11 + [eps] * 10 + [eps / 2] * 9 + [eps / 4] * 8 + [eps / 8] * 7 + [eps / 16] * 5
    )
    assert len(gradient_steps) == 50
    assert gradient_steps[1:] == pytest.approx(expected[1:], abs=1e-6)  # step 0: random start


def test_apgd_is_at_least_as_strong_as_pgd(cnn, digits):
    x, y = digits[0][:32], digits[1][:32]
    for eps in (0.1, 0.15):
        acc_pgd = accuracy(
            cnn,
            pgd(
                cnn, x, y, eps, alpha=eps / 10, steps=20, generator=torch.Generator().manual_seed(0)
            ),
            y,
        )
        acc_apgd = accuracy(cnn, apgd(cnn, x, y, eps=eps, steps=20, seed=0), y)
        print(f"\neps {eps}: PGD-20 {acc_pgd:.3f}, APGD-CE-20 {acc_apgd:.3f}")
        assert acc_apgd <= acc_pgd


def test_invariants_on_the_cnn(cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    out = apgd(cnn, x, y, eps=0.1, steps=10, loss="dlr", seed=3)
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert (out - x).abs().max() <= 0.1 + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, apgd(cnn, x, y, eps=0.1, steps=10, loss="dlr", seed=3))
    assert torch.equal(apgd(cnn, x, y, eps=0.0, steps=5), x)
    one = apgd(cnn, x[0], int(y[0]), eps=0.1, steps=10, loss="dlr", seed=3)
    assert one.shape == (1, 28, 28)
    wrong = (y + 1) % 10  # "already misclassified": untouched
    assert torch.equal(apgd(cnn, x[:4], wrong[:4], eps=0.1, steps=5), x[:4])


def test_targeted_apgd(cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    target = (y + 1) % 10
    out = apgd(cnn, x, y, eps=0.25, steps=20, loss="dlr", targeted=True, target=target, seed=0)
    with torch.no_grad():
        hit = cnn(out).argmax(1) == target
    assert float(hit.float().mean()) > 0.8
    # APGD-T without a target: any wrong class, trying the likeliest wrong classes in turn
    x_t = apgd(cnn, x, y, eps=0.15, steps=10, targeted=True, target_classes=3, seed=0)
    x_1 = apgd(cnn, x, y, eps=0.15, steps=10, targeted=True, target_classes=1, seed=0)
    assert accuracy(cnn, x_t, y) <= accuracy(cnn, x_1, y) < accuracy(cnn, x, y)


def test_model_mode_restored_and_no_parameter_grads(cnn, digits):
    x, y = digits[0][:4], digits[1][:4]
    cnn.train()
    try:
        a = apgd(cnn, x, y, eps=0.1, steps=5, seed=0)
        assert cnn.training
    finally:
        cnn.eval()
    assert torch.equal(a, apgd(cnn, x, y, eps=0.1, steps=5, seed=0))
    assert all(p.grad is None for p in cnn.parameters())
    with torch.no_grad():
        assert torch.equal(apgd(cnn, x, y, eps=0.1, steps=5, seed=0), a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss": "hinge"}, "unknown APGD loss 'hinge'; allowed: ce, dlr"),
        ({"steps": 0}, "steps must be a whole number >= 1, not 0"),
        ({"restarts": 0}, "restarts must be a whole number >= 1, not 0"),
        ({"eps": 2.0}, r"eps must be in \[0, 1\]"),
        ({"target": 3}, "targeted=True"),
        ({"targeted": True, "target_classes": 10}, r"target_classes .* \[1, 9\]"),
        ({"targeted": True, "target": 12}, r"12 is out of range"),
    ],
)
def test_bad_settings_are_named(cnn, digits, kwargs, message):
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ConfigError, match=message):
        apgd(cnn, x, y, **{"eps": 0.1, **kwargs})


def test_target_equal_to_the_label_and_too_few_classes(cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ConfigError, match="is the true class"):
        apgd(cnn, x, y, eps=0.1, targeted=True, target=y)
    model = Logistic(torch.randn(784), 0.0)
    with pytest.raises(ConfigError, match="DLR loss needs at least 3 classes; this model has 2"):
        apgd(model, x, torch.zeros(2, dtype=torch.long), eps=0.1, loss="dlr")


def test_model_without_gradients_suggests_black_box(digits):
    model = NoGradLinear().train()
    with pytest.raises(AttackError, match="black-box"):
        apgd(model, digits[0][:2], digits[1][:2], eps=0.1)
    assert model.training


@pytest.mark.slow
def test_apgd_100_steps_vs_pgd_on_100_digits(cnn):
    x, y = sweep_images(100, seed=0)
    for eps in (0.1, 0.2):
        acc_pgd = accuracy(
            cnn,
            pgd(
                cnn,
                x,
                y,
                eps,
                alpha=eps / 40,
                steps=100,
                generator=torch.Generator().manual_seed(0),
            ),
            y,
        )
        acc_apgd = accuracy(cnn, apgd(cnn, x, y, eps=eps, steps=100, seed=0), y)
        print(f"\neps {eps}, 100 digits: PGD-100 {acc_pgd:.3f}, APGD-CE-100 {acc_apgd:.3f}")
        assert acc_apgd <= acc_pgd
