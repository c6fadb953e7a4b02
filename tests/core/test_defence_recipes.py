"""The certification recipes of the one training loop: each step's loss is the certify
function's on the same batch and the same random draws (the trainer calls it, no copy)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.certify.ibp import ibp_loss, ibp_schedule
from advstudio.core.certify.trades import trades_loss
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.defence import TrainConfig, train_classifier
from advstudio.core.defence.common import subset
from advstudio.core.defence.train import NOISE_SEED_OFFSET, AdversarialTrainer, step_keys
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, drive
from advstudio.core.models.classifier import Classifier


def _tiny() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    return Classifier(net, (1, 28, 28), DIGIT_CLASSES, (0.1307,), (0.3081,))


def _batch(n: int = 16):
    return subset(load_digits("train"), n, 0)


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"eval_images": 0, "seed": 3, **kw})


def _noise_rng(config: TrainConfig) -> torch.Generator:
    return torch.Generator().manual_seed(config.seed + NOISE_SEED_OFFSET)


def test_noise_recipe_trains_on_x_plus_sigma_times_the_seeded_gaussian():
    config = _config(recipe="noise", sigma=0.5)
    model = _tiny()
    reference = copy.deepcopy(model)
    x, y = _batch()
    noisy = x + 0.5 * torch.randn(x.shape, generator=_noise_rng(config))
    expected = F.cross_entropy(reference(noisy), y).item()
    step = AdversarialTrainer(config, model=model).train_step(x, y)
    assert step["loss"] == pytest.approx(expected, rel=1e-6)
    assert set(step) == set(step_keys(config)) == {"loss", "batch_acc", "grad_norm"}


def test_trades_recipe_loss_is_trades_loss_with_the_pgd_recipes_steps():
    config = _config(recipe="trades", eps=0.2, pgd_steps=3, trades_beta=2.0)
    model = _tiny()
    reference = copy.deepcopy(model)
    x, y = _batch()
    expected = trades_loss(
        reference, x, y, beta=2.0, eps=0.2, step_size=0.05, steps=3, generator=_noise_rng(config)
    ).item()
    assert AdversarialTrainer(config, model=model).train_step(x, y)["loss"] == pytest.approx(
        expected, rel=1e-6
    )


def test_ibp_recipe_follows_the_schedule_per_step_and_its_loss_is_ibp_loss():
    config = _config(recipe="ibp", eps=0.3, ibp_kappa=0.25, ibp_warmup_steps=2, ibp_ramp_steps=4)
    trainer = AdversarialTrainer(config, model=_tiny())
    x, y = _batch()
    for step in range(8):
        eps_t, kappa_t = ibp_schedule(step, eps=0.3, kappa_final=0.25, warmup_steps=2, ramp_steps=4)
        expected = ibp_loss(copy.deepcopy(trainer.model), x, y, eps_t, kappa_t).item()
        values = trainer.train_step(x, y)
        assert values["ibp_eps"] == pytest.approx(eps_t, abs=1e-7)
        assert values["ibp_kappa"] == pytest.approx(kappa_t, abs=1e-7)
        assert values["loss"] == pytest.approx(expected, rel=1e-5)
    assert (values["ibp_eps"], values["ibp_kappa"]) == pytest.approx((0.3, 0.25))


def test_noise_draws_resume_from_the_checkpointed_state():
    config = _config(recipe="noise")
    x, y = _batch()
    first = AdversarialTrainer(config, model=_tiny())
    first.train_step(x, y)
    resumed = AdversarialTrainer(config, model=_tiny())
    resumed.load_state_dict(first.state_dict())
    assert torch.equal(first.noise_rng.get_state(), resumed.noise_rng.get_state())
    assert first.train_step(x, y)["loss"] == pytest.approx(resumed.train_step(x, y)["loss"])


@pytest.mark.parametrize("recipe", ["noise", "ibp", "trades"])
def test_dry_run_of_each_recipe_trains_one_step(recipe):
    events = []
    result = drive(
        train_classifier(TrainConfig(recipe=recipe, dry_run=True, pgd_steps=2)), events.append
    ).result
    assert result.history[0]["step"] == 1.0
    steps = [e.values for e in events if isinstance(e, Metrics) and "loss" in e.values]
    assert set(steps[0]) == set(step_keys(result.config))
    assert result.save_path == ""


@pytest.mark.parametrize(
    "field, value",
    [
        ("sigma", 0.0),
        ("sigma", 5.0),
        ("trades_beta", -1.0),
        ("ibp_kappa", 1.5),
        ("ibp_warmup_steps", -1),
        ("ibp_ramp_steps", 0.5),
    ],
)
def test_bad_recipe_fields_fail_when_the_config_is_built(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(recipe="noise", **{field: value})


def test_the_noise_recipe_needs_no_attack_radius():
    assert TrainConfig(recipe="noise", eps=0.0).eps == 0.0
    with pytest.raises(ConfigError, match="eps"):
        TrainConfig(recipe="trades", eps=0.0)
