"""EoT-PGD and the randomised input defences: reproducible draws with a seed, EoT's gradient as
the closed-form average of per-draw gradients on a logistic model behind Gaussian noise, the
resize-and-pad transform's geometry, and the defence comparison's EoT column."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.eot import eot_gradient, eot_pgd
from advstudio.core.attacks.lab import compare_defence
from advstudio.core.attacks.transforms import GaussianNoise, RandomResizePad, defended
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import drive
from advstudio.core.models.registry import load_builtin
from tests.core.helpers import Logistic

SIGMA = 0.05


def _noisy_logistic():
    torch.manual_seed(1)
    w = torch.randn(16)
    return Logistic(w, 0.3), w


def test_eot_draws_are_reproducible_with_a_seed():
    model, _ = _noisy_logistic()
    shielded = defended(model, GaussianNoise(SIGMA))
    x, y = torch.full((2, 1, 4, 4), 0.5), torch.tensor([1, 0])
    before = torch.random.get_rng_state()
    a = eot_gradient(shielded, x, y, samples=5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's state is kept
    assert torch.equal(a, eot_gradient(shielded, x, y, samples=5, seed=3))
    assert not torch.equal(a, eot_gradient(shielded, x, y, samples=5, seed=4))
    assert torch.equal(
        eot_pgd(shielded, x, y, 0.1, alpha=0.02, steps=3, samples=2, seed=3),
        eot_pgd(shielded, x, y, 0.1, alpha=0.02, steps=3, samples=2, seed=3),
    )


def test_eot_gradient_is_the_average_of_the_per_draw_gradients():
    """Logistic model, label 1: CE = softplus(-z), d CE / d x = -sigmoid(-z) w per draw, with
    z_k = w . (x + sigma n_k) + b (x = 0.5 and sigma 0.05: no pixel is clipped)."""
    model, w = _noisy_logistic()
    x, samples, seed = torch.full((1, 1, 4, 4), 0.5), 7, 11
    got = eot_gradient(
        defended(model, GaussianNoise(SIGMA)), x, torch.tensor([1]), samples=samples, seed=seed
    )
    torch.manual_seed(seed)
    noise = [torch.randn(1, 1, 4, 4) for _ in range(samples)]  # the draws, in the same order
    want = -torch.stack(
        [torch.sigmoid(-((x + SIGMA * n).flatten() @ w + 0.3)) * w for n in noise]
    ).mean(0)
    assert torch.allclose(got.flatten(), want, atol=1e-6)


def test_resize_pad_keeps_the_shape_and_the_content():
    x = torch.rand(3, 1, 28, 28)
    torch.manual_seed(0)
    out = RandomResizePad(4)(x)
    assert out.shape == x.shape
    assert torch.equal(RandomResizePad(0)(x), x)  # no shrink: side 28, no padding
    with pytest.raises(ConfigError, match="shrink must be a whole number >= 0"):
        RandomResizePad(-1)
    with pytest.raises(ConfigError, match=r"noise sigma must be a number in \[0, 1\]"):
        GaussianNoise(2.0)


def test_defence_comparison_adds_eot_for_random_defences_only():
    cnn = load_builtin("digits-cnn")
    from advstudio.core.attacks.sweep import sweep_images

    x, y = sweep_images(1, seed=0)
    c = drive(
        compare_defence(cnn, x[0], defence="noise", parameter=25, eps=0.2, steps=3, label=int(y[0]))
    ).result
    assert c.eot is not None and c.eot.linf <= 0.2 + 1e-6 and c.bpda is not None
    c = drive(
        compare_defence(cnn, x[0], defence="median", parameter=2, eps=0.2, steps=2, label=int(y[0]))
    ).result
    assert c.eot is None
