"""White-box attacks: closed forms on linear models; invariants and strength on the built-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advstudio.core.attacks import (
    apply_direction,
    bim,
    eval_mode,
    fgsm,
    fgsm_direction,
    mifgsm,
    pgd,
)
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import AttackError, ConfigError
from advstudio.core.models.registry import load_builtin
from tests.core.helpers import Logistic, accuracy


@pytest.fixture(scope="module")
def digits():
    return sweep_images(300, seed=0)


@pytest.fixture
def logistic_case():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=gen)
    w[[3, 7]] = 0.0  # zero weight: the pixel must not move
    x = torch.rand(4, 1, 4, 4, generator=gen)
    x[0, 0, 0, :] = torch.tensor([0.0, 1.0, 0.02, 0.97])  # clipping at both ends
    return Logistic(w, 0.3), x, w


def _expected_sign(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # d CE / dx = -sigmoid(-z) w for y = 1 and sigmoid(z) w for y = 0: sign -sign(w), +sign(w)
    s = torch.where(y[:, None] == 1, -torch.sign(w)[None], torch.sign(w)[None])
    return s.view(-1, 1, 4, 4)


def test_fgsm_matches_logistic_closed_form(logistic_case):
    model, x, w = logistic_case
    y = torch.tensor([1, 0, 1, 0])
    for eps in (0.05, 0.3):
        expected = (x + eps * _expected_sign(w, y)).clamp(0, 1)
        assert torch.allclose(fgsm(model, x, y, eps), expected, atol=1e-7)
    assert torch.equal(fgsm_direction(model, x, y), _expected_sign(w, y))
    out = fgsm(model, x, y, 0.3)
    assert out[0, 0, 0, 0] >= 0 and out[0, 0, 0, 1] <= 1  # clipped, not overshooting
    assert torch.equal(out.flatten(1)[:, [3, 7]], x.flatten(1)[:, [3, 7]])


def test_targeted_fgsm_steps_down_the_target_loss(logistic_case):
    model, x, w = logistic_case
    target = torch.tensor([1, 1, 0, 0])
    # x' = x - eps sign(grad CE(t)): towards +sign(w) for t = 1, -sign(w) for t = 0
    expected = (x - 0.2 * _expected_sign(w, target)).clamp(0, 1)
    assert torch.allclose(fgsm(model, x, target, 0.2, targeted=True), expected, atol=1e-7)


def test_iterative_attacks_on_logistic_reach_the_ball_edge(logistic_case):
    # the gradient sign of a linear model does not depend on x, so k steps of alpha move each
    # pixel by min(k alpha, eps) along it (then clip): a closed form for BIM, PGD and MI-FGSM
    model, x, w = logistic_case
    y = torch.tensor([1, 0, 0, 1])
    s = _expected_sign(w, y)
    assert torch.allclose(
        bim(model, x, y, 0.3, alpha=0.05, steps=3), (x + 0.15 * s).clamp(0, 1), atol=1e-6
    )
    edge = (x + 0.3 * s).clamp(0, 1)
    assert torch.allclose(bim(model, x, y, 0.3, alpha=0.1, steps=5), edge, atol=1e-6)
    assert torch.allclose(mifgsm(model, x, y, 0.3, alpha=0.1, steps=5), edge, atol=1e-6)
    got = pgd(model, x, y, 0.3, alpha=0.15, steps=5, generator=torch.Generator().manual_seed(1))
    moving = (w != 0).view(1, 1, 4, 4).expand_as(x)
    # from any start in the ball, 4 steps of eps/2 reach the edge; zero-weight pixels have a
    # zero gradient and stay at their random start, somewhere inside the ball
    assert torch.allclose(got[moving], edge[moving], atol=1e-6)
    assert not torch.equal(got[~moving], x[~moving])
    assert (got - x).abs().max() <= 0.3 + 1e-6


def test_fgsm_direction_matches_softmax_regression_gradient():
    gen = torch.Generator().manual_seed(3)
    lin = nn.Linear(12, 5)
    x = torch.rand(6, 1, 3, 4, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    model = nn.Sequential(nn.Flatten(), lin)
    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    xf = x.flatten(1).double().numpy()
    z = xf @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(5)[y.numpy()]) @ W  # d CE / dx
    got = fgsm_direction(model, x, y).flatten(1).numpy()
    np.testing.assert_array_equal(got, np.sign(grad))
    got_t = fgsm_direction(model, x, y, targeted=True).flatten(1).numpy()
    np.testing.assert_array_equal(got_t, -np.sign(grad))


ATTACKS = {
    "fgsm": lambda m, x, y, e, **k: fgsm(m, x, y, e, **k),
    "bim": lambda m, x, y, e, **k: bim(m, x, y, e, alpha=max(e, 0.01) / 2, steps=2, **k),
    "pgd": lambda m, x, y, e, **k: pgd(
        m, x, y, e, alpha=max(e, 0.01) / 2, steps=2, generator=torch.Generator().manual_seed(0), **k
    ),
    "mifgsm": lambda m, x, y, e, **k: mifgsm(m, x, y, e, alpha=max(e, 0.01) / 2, steps=2, **k),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_invariants_on_the_cnn(cnn, digits, name):
    x, y = digits[0][:32], digits[1][:32]
    attack = ATTACKS[name]
    for eps in (0.1, 0.3):
        x_adv = attack(cnn, x, y, eps)
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (x_adv != x).any()
    assert torch.equal(attack(cnn, x, y, 0.0), x)
    assert all(p.grad is None for p in cnn.parameters())


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_is_restored(cnn, digits, training):
    x, y = digits[0][:8], digits[1][:8]
    cnn.train(training)
    try:
        fgsm(cnn, x, y, 0.1)
        pgd(cnn, x, y, 0.1, alpha=0.05, steps=2)
        assert all(m.training == training for m in cnn.modules())
        with pytest.raises(ConfigError):  # raised inside the attack, after a forward
            fgsm(cnn, x, torch.full((8,), 10), 0.1)
        assert all(m.training == training for m in cnn.modules())
        with pytest.raises(ValueError, match="channels"):  # the model itself raises:
            fgsm(cnn, torch.rand(2, 2, 28, 28), torch.zeros(2, dtype=torch.long), 0.1)
        assert all(m.training == training for m in cnn.modules())
    finally:
        cnn.eval()


def test_mixed_submodule_modes_are_restored_each_on_its_own(cnn, digits):
    cnn.train()
    cnn.net[5].eval()  # one dropout layer frozen by the user
    try:
        fgsm(cnn, digits[0][:4], digits[1][:4], 0.1)
        assert cnn.training and not cnn.net[5].training and cnn.net[9].training
    finally:
        cnn.eval()


def test_attacking_a_training_mode_model_uses_eval_mode(cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    cnn.train()  # dropout would make two runs differ
    try:
        assert torch.equal(fgsm(cnn, x, y, 0.1), fgsm(cnn, x, y, 0.1))
    finally:
        cnn.eval()


def test_batchnorm_statistics_and_parameter_grads_untouched():
    mlp = load_builtin("digits-mlp").train()
    x, y = sweep_images(16, seed=1)
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    fgsm(mlp, x, y, 0.2)
    pgd(mlp, x, y, 0.2, alpha=0.05, steps=3)
    mifgsm(mlp, x, (y + 1) % 10, 0.2, alpha=0.05, steps=3, targeted=True)
    for k, v in mlp.state_dict().items():
        assert torch.equal(v, before[k]), k  # running_mean/var, num_batches_tracked too
    assert all(p.grad is None for p in mlp.parameters())
    assert mlp.training


def test_one_image_and_grad_disabled_caller(cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    batch = fgsm(cnn, x, y, 0.2)
    one = fgsm(cnn, x[1], int(y[1]), 0.2)
    assert one.shape == (1, 28, 28)
    assert torch.allclose(one, batch[1], atol=1e-6)
    with torch.no_grad():  # e.g. the UI's preview code
        assert torch.allclose(fgsm(cnn, x, y, 0.2), batch)


def test_cached_direction_reproduces_fgsm(cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    direction = fgsm_direction(cnn, x, y)
    assert set(direction.unique().tolist()) <= {-1.0, 0.0, 1.0}
    for eps in (0.0, 0.07, 0.25):
        assert torch.equal(apply_direction(x, direction, eps), fgsm(cnn, x, y, eps))


def test_fgsm_at_025_breaks_the_cnn(cnn, digits):
    x, y = digits
    clean, adv = accuracy(cnn, x, y), accuracy(cnn, fgsm(cnn, x, y, 0.25), y)
    print(f"\nCNN on {len(x)} test digits: clean {clean:.3f}, FGSM eps .25 {adv:.3f}")
    assert clean > 0.95
    assert adv < 0.5


def test_pgd_is_stronger_than_fgsm(cnn, digits):
    x, y = digits[0][:64], digits[1][:64]
    acc_fgsm = accuracy(cnn, fgsm(cnn, x, y, 0.15), y)
    acc_pgd = accuracy(
        cnn,
        pgd(cnn, x, y, 0.15, alpha=0.15 / 4, steps=7, generator=torch.Generator().manual_seed(0)),
        y,
    )
    print(f"\neps .15 on 64 digits: FGSM {acc_fgsm:.2f}, PGD-7 {acc_pgd:.2f}")
    assert acc_pgd < acc_fgsm - 0.1


def test_targeted_attacks_reach_the_target(cnn, digits):
    x, y = digits[0][:64], digits[1][:64]
    target = (y + 1) % 10
    hit_pgd = float(
        (
            cnn(
                pgd(
                    cnn,
                    x,
                    target,
                    0.25,
                    alpha=0.05,
                    steps=10,
                    targeted=True,
                    y_true=y,
                    generator=torch.Generator().manual_seed(0),
                )
            ).argmax(1)
            == target
        )
        .float()
        .mean()
    )
    hit_fgsm = float(
        (cnn(fgsm(cnn, x, target, 0.3, targeted=True)).argmax(1) == target).float().mean()
    )
    print(
        f"\ntargeted (y+1 mod 10) on 64 digits: PGD-10 eps .25 {hit_pgd:.2f}, "
        f"FGSM eps .3 {hit_fgsm:.2f}"
    )
    assert hit_pgd > 0.85
    assert hit_fgsm > 0.15


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_bad_eps_is_named(cnn, digits, eps):
    with pytest.raises(ConfigError, match=f"{eps:g}") as info:
        fgsm(cnn, digits[0][:2], digits[1][:2], eps)
    assert "[0, 1]" in str(info.value)


def test_bad_targets_are_named(cnn, digits):
    x, y = digits[0][:4], digits[1][:4]
    with pytest.raises(ConfigError, match=r"10 is out of range.*\[0, 9\]"):
        fgsm(cnn, x, 10, 0.1, targeted=True)
    with pytest.raises(ConfigError, match=r"-1 is out of range"):
        fgsm(cnn, x, -1, 0.1)
    same = y.clone()
    same[2] = (y[2] + 3) % 10
    with pytest.raises(ConfigError, match=f"target class {int(y[0])} is the true class"):
        fgsm(cnn, x, y, 0.1, targeted=True, y_true=y)
    with pytest.raises(ConfigError, match="3 labels for 4 images"):
        fgsm(cnn, x, y[:3], 0.1)


def test_bad_hyper_parameters_and_images(cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ConfigError, match="steps .* not 0"):
        bim(cnn, x, y, 0.1, alpha=0.01, steps=0)
    with pytest.raises(ConfigError, match="alpha .* not 0"):
        pgd(cnn, x, y, 0.1, alpha=0.0, steps=3)
    with pytest.raises(ConfigError, match="decay"):
        mifgsm(cnn, x, y, 0.1, alpha=0.01, steps=3, decay=-1)
    with pytest.raises(ConfigError, match=r"\[0, 1\]; these range over \[0, 255\]"):
        fgsm(cnn, x * 255, y, 0.1)
    with pytest.raises(ConfigError, match="shape"):
        fgsm(cnn, x[0, 0], y[:1], 0.1)


class _NoGrad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        with torch.no_grad():
            return self.lin(x.flatten(1))


def test_model_without_gradients_suggests_black_box(digits):
    model = _NoGrad().train()
    with pytest.raises(AttackError, match="black-box"):
        fgsm(model, digits[0][:2], digits[1][:2], 0.1)
    assert model.training


def test_eval_mode_restores_on_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not net.training and not net[1].training
        raise RuntimeError("boom")
    assert net.training and net[1].training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attacks_run_on_the_inputs_device(digits):
    model = load_builtin("digits-cnn", device="cuda")
    x, y = digits[0][:16].cuda(), digits[1][:16].cuda()
    for name, attack in ATTACKS.items():
        x_adv = attack(model, x, y, 0.2)
        assert x_adv.device.type == "cuda", name
        assert (x_adv - x).abs().max() <= 0.2 + 1e-6
