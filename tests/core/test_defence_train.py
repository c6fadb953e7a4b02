"""Adversarial training: the step's modes and loss, the job's files, resume, divergence."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import advstudio.core.defence.train as train_mod
from advstudio.core.attacks import fgsm, pgd
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.defence import (
    TrainConfig,
    catastrophic_overfitting,
    robust_accuracy,
    train_classifier,
)
from advstudio.core.defence.common import load_checkpoint, subset
from advstudio.core.defence.train import CHECKPOINT_KIND, AdversarialTrainer, step_keys
from advstudio.core.errors import ConfigError, TrainingDivergedError
from advstudio.core.jobs import Log, Metrics, Progress, drive
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.registry import load_model, load_user_model


def _digits(n: int, seed: int = 0):
    return subset(load_digits("train"), n, seed)


def _tiny(dropout: bool = False) -> Classifier:
    torch.manual_seed(0)
    layers = [nn.Flatten(), nn.Linear(784, 32), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(32, 10))
    return Classifier(nn.Sequential(*layers), (1, 28, 28), DIGIT_CLASSES, (0.1307,), (0.3081,))


def _no_eval(**kw) -> TrainConfig:
    return TrainConfig(**{"eval_images": 0, **kw})


# ----------------------------------------------------------------------------- the step


@pytest.mark.parametrize("recipe", ["standard", "fgsm", "fgsm-rs", "pgd"])
def test_attack_runs_in_eval_mode_and_the_update_in_train_mode(recipe):
    model = _tiny(dropout=True)
    trainer = AdversarialTrainer(_no_eval(recipe=recipe, pgd_steps=3), model=model)
    dropout = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    calls = []  # (input needs grad: an attack's pass, dropout active, batch size)
    hook = model.register_forward_pre_hook(
        lambda m, inp: calls.append((inp[0].requires_grad, dropout.training, len(inp[0])))
    )
    model.eval()  # whatever the caller left: the step sets the modes it needs
    x, y = _digits(16)
    try:
        trainer.train_step(x, y)
    finally:
        hook.remove()
    attack_calls = [c for c in calls if c[0]]
    train_calls = [c for c in calls if not c[0]]
    expected_attack = {"standard": 0, "fgsm": 1, "fgsm-rs": 1, "pgd": 3}[recipe]
    assert len(attack_calls) == expected_attack
    assert all(not active for _, active, _ in attack_calls), "attacks ran with dropout on"
    assert len(train_calls) == 1 and train_calls[0][1], "the update ran with dropout on"
    # the FGSM mix trains on clean + adversarial; fgsm-rs and pgd on adversarial images only
    assert train_calls[0][2] == (32 if recipe == "fgsm" else 16)
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("alpha_mix", [0.5, 0.3])
def test_fgsm_mix_loss_and_update_match_a_hand_computation(alpha_mix):
    model = _tiny()  # no dropout: every pass is deterministic
    x, y = _digits(16)
    eps = 0.1
    reference = _tiny()
    reference.load_state_dict(model.state_dict())
    # by hand: FGSM against the current weights, the documented mix, its gradient
    x_adv = fgsm(reference, x, y, eps)
    assert torch.equal(x_adv, (x + eps * _input_grad(reference, x, y).sign()).clamp(0, 1))
    loss = alpha_mix * F.cross_entropy(reference(x), y) + (1 - alpha_mix) * F.cross_entropy(
        reference(x_adv), y
    )
    grads = torch.autograd.grad(loss, list(reference.parameters()))

    lr = 1e-3
    trainer = AdversarialTrainer(
        _no_eval(recipe="fgsm", eps=eps, alpha_mix=alpha_mix, lr=lr), model=model
    )
    before = [p.detach().clone() for p in model.parameters()]
    values = trainer.train_step(x, y)
    assert values["loss"] == pytest.approx(loss.item(), rel=1e-5)
    hits_clean = (reference(x).argmax(1) == y).float()
    hits_adv = (reference(x_adv).argmax(1) == y).float()
    assert values["batch_acc"] == pytest.approx(torch.cat([hits_clean, hits_adv]).mean().item())
    assert values["adv_batch_acc"] == pytest.approx(hits_adv.mean().item())
    # Adam's first step is lr * g / (|g| + 1e-8) per parameter
    for p0, p1, g in zip(before, model.parameters(), grads):
        expected = p0 - lr * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p1.detach(), expected, rtol=0, atol=2e-6)


def _input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return g


def test_recipes_attack_as_documented():
    x, y = _digits(8)
    model = _tiny()
    for recipe, eps in (("fgsm-rs", 0.2), ("pgd", 0.1)):
        trainer = AdversarialTrainer(_no_eval(recipe=recipe, eps=eps, pgd_steps=5), model=model)
        state = trainer.rng.get_state()
        got = trainer.adversarial(x, y)
        g = torch.Generator()
        g.set_state(state)
        if recipe == "fgsm-rs":  # Wong et al.: random start, one step of 1.25 eps, project
            want = pgd(model, x, y, eps, alpha=1.25 * eps, steps=1, generator=g)
        else:  # Madry et al.: PGD-k, step eps / 4, random start
            want = pgd(model, x, y, eps, alpha=eps / 4, steps=5, generator=g)
        assert torch.equal(got, want)
        assert (got - x).abs().max() <= eps + 1e-6 and got.min() >= 0 and got.max() <= 1
    assert AdversarialTrainer(_no_eval(), model=model).adversarial(x, y) is None


def test_seeded_and_global_rng_untouched():
    x, y = _digits(64)
    state = torch.get_rng_state()
    a = AdversarialTrainer(_no_eval(recipe="fgsm-rs", seed=3))
    b = AdversarialTrainer(_no_eval(recipe="fgsm-rs", seed=3))
    assert a.train_step(x, y) == b.train_step(x, y)
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- the job


def test_job_events_history_and_saved_weights(tmp_path):
    path = tmp_path / "models" / "adv.pt"
    cfg = TrainConfig(
        recipe="fgsm", epochs=1, eval_images=60, eval_pgd_steps=3, save_path=str(path)
    )
    out = drive(train_classifier(cfg, data=_digits(256)), keep_events=True)
    res = out.result
    step_metrics = [e for e in out.events if isinstance(e, Metrics) and "loss" in e.values]
    epoch_metrics = [e for e in out.events if isinstance(e, Metrics) and "epoch" in e.values]
    assert [m.step for m in step_metrics] == [1, 2, 3, 4]
    assert all(set(m.values) == set(step_keys(cfg)) for m in step_metrics)
    train_progress = [e for e in out.events if isinstance(e, Progress) and "step" in e.message]
    assert [(p.done, p.total) for p in train_progress] == [(i, 4) for i in range(1, 5)]
    assert {p.phase for p in train_progress} == {"training"}
    # the held-out evaluation after the last step is its own phase, counted in its images
    evaluation = [e for e in out.events if isinstance(e, Progress) and e.phase != "training"]
    assert {p.phase for p in evaluation} == {"evaluating on 60 held-out digits"}
    assert evaluation[-1].done == evaluation[-1].total == 60
    assert out.events.index(evaluation[0]) > out.events.index(train_progress[-1])
    assert len(epoch_metrics) == 1 and epoch_metrics[0].step == 4
    (record,) = res.history
    assert set(record) == {
        "epoch",
        "step",
        "train_loss",
        "train_acc",
        "seconds",
        "clean_acc",
        "fgsm_acc",
        "pgd_acc",
    }
    assert record == epoch_metrics[0].values
    assert all(0 <= record[k] <= 1 for k in ("clean_acc", "fgsm_acc", "pgd_acc"))
    assert res.metrics == {k: record[k] for k in ("clean_acc", "fgsm_acc", "pgd_acc", "train_loss")}
    assert res.parameters == 1_199_882 and res.save_path == str(path)
    # the file is a plain state_dict: the registry (and so the Attack tab) loads it
    assert sorted(p.name for p in path.parent.iterdir()) == ["adv.pt"]  # no .part left
    loaded = load_user_model(path)
    again = load_model(f"file:{path}")
    x, _ = _digits(20, seed=5)
    with torch.no_grad():
        want = res.classifier()(x)
        torch.testing.assert_close(loaded(x), want)
        torch.testing.assert_close(again(x), want)
    # the held-out figures are robust_accuracy on a seeded random subset of the test digits
    from advstudio.core.defence.common import heldout_digits

    xt, yt = heldout_digits(60, cfg.seed)
    assert len(set(yt.tolist())) >= 8  # a random subset, not the first (sorted) classes
    again = robust_accuracy(
        res.classifier(),
        xt,
        yt,
        cfg.eps,
        pgd_steps=3,
        generator=torch.Generator().manual_seed(cfg.seed + 3),
    )
    assert again == {k: record[k] for k in ("clean_acc", "fgsm_acc", "pgd_acc")}


def test_dry_run_writes_nothing(tmp_path):
    cfg = TrainConfig(
        dry_run=True,
        recipe="pgd",
        checkpoint_path=str(tmp_path / "c.pt"),
        save_path=str(tmp_path / "m.pt"),
    )
    out = drive(train_classifier(cfg), keep_events=True)
    assert [e.step for e in out.events if isinstance(e, Metrics)] == [1, 1]
    assert "dry run" in out.events[0].text and "random fake" in out.events[0].text
    assert out.result.history[0]["epoch"] == 1 and "pgd_acc" in out.result.history[0]
    assert not list(tmp_path.iterdir())


def _events_until(job, stop):
    """Pull events until ``stop(event)``; return them (the job is left suspended)."""
    seen = []
    for event in job:
        seen.append(event)
        if stop(event):
            return seen
    raise AssertionError("the job ended before the stop event")


def test_cancel_leaves_no_partial_file_and_resume_repeats_the_uninterrupted_run(tmp_path):
    data = _digits(96)
    kw = dict(recipe="fgsm-rs", arch="digits-cnn", epochs=2, batch_size=32, eval_images=0)
    full = drive(train_classifier(TrainConfig(**kw), data=data)).result

    ckpt, saved = tmp_path / "run.ckpt", tmp_path / "model.pt"
    job = train_classifier(
        TrainConfig(**kw, checkpoint_path=str(ckpt), save_path=str(saved)), data=data
    )
    _events_until(job, lambda e: isinstance(e, Metrics) and e.step == 5)  # in epoch 2
    job.close()  # cancel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # epoch 1's, no model
    state = load_checkpoint(ckpt, CHECKPOINT_KIND)
    assert (state["epoch"], state["step"]) == (1, 3)

    out = drive(
        train_classifier(
            TrainConfig(**kw, checkpoint_path=str(ckpt), resume=True, save_path=str(saved)),
            data=data,
        ),
        keep_events=True,
    )
    assert out.events[0].text.startswith(f"Resumed from {ckpt} after epoch 1")
    res = out.result
    assert [m.step for m in out.events if isinstance(m, Metrics) and "loss" in m.values] == [
        4,
        5,
        6,
    ]
    assert [h["epoch"] for h in res.history] == [1, 2]
    for key in full.state_dict:
        assert torch.equal(res.state_dict[key], full.state_dict[key]), key
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in full.history]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "run.ckpt"]
    # a finished checkpoint: resuming again trains nothing and says so
    again = drive(
        train_classifier(TrainConfig(**kw, checkpoint_path=str(ckpt), resume=True), data=data)
    )
    assert any("nothing to train" in text for text in again.result.logs)


def test_resume_from_another_architecture_is_refused(tmp_path):
    from advstudio.core.errors import CheckpointError

    ckpt = tmp_path / "run.ckpt"
    data = _digits(64)
    drive(
        train_classifier(
            TrainConfig(
                arch="digits-mlp", epochs=1, batch_size=32, eval_images=0, checkpoint_path=str(ckpt)
            ),
            data=data,
        )
    )
    with pytest.raises(CheckpointError, match="arch = 'digits-mlp'.*arch = 'digits-cnn'"):
        drive(
            train_classifier(
                TrainConfig(epochs=2, eval_images=0, checkpoint_path=str(ckpt), resume=True),
                data=data,
            )
        )


def test_nan_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = AdversarialTrainer.adversarial

    def nan_at_step_5(self, x, y):
        adv = real(self, x, y)
        return adv * float("nan") if self.step == 4 else adv

    monkeypatch.setattr(AdversarialTrainer, "adversarial", nan_at_step_5)
    ckpt = tmp_path / "run.ckpt"
    cfg = TrainConfig(
        recipe="fgsm",
        epochs=3,
        batch_size=32,
        eval_images=0,
        checkpoint_path=str(ckpt),
        save_path=str(tmp_path / "m.pt"),
    )
    with pytest.raises(TrainingDivergedError) as info:
        drive(train_classifier(cfg, data=_digits(96)))
    err = info.value
    assert (err.quantity, err.step, err.checkpoint) == ("loss", 5, str(ckpt))
    assert "step 5: loss is nan" in str(err)
    assert f"the last good checkpoint (epoch 1) was kept at {ckpt}" in str(err)
    state = load_checkpoint(ckpt, CHECKPOINT_KIND)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_huge_learning_rate_diverges_before_updating():
    cfg = TrainConfig(arch="digits-mlp", lr=1e6, epochs=5, batch_size=32, eval_images=0)
    with pytest.raises(
        TrainingDivergedError, match=r"diverged at step \d+: (loss|grad_norm) is .*no checkpoint"
    ):
        drive(train_classifier(cfg, data=_digits(256)))


def test_overfitting_warning_is_logged(monkeypatch):
    # scripted evaluations: epoch 1 robust, epoch 2 FGSM up and PGD collapsed
    figures = iter(
        [
            {"clean_acc": 0.9, "fgsm_acc": 0.6, "pgd_acc": 0.55},
            {"clean_acc": 0.9, "fgsm_acc": 0.92, "pgd_acc": 0.05},
        ]
    )

    def scripted(*args, **kwargs):
        yield Progress(1, 1, "evaluating")
        return next(figures)

    monkeypatch.setattr(train_mod, "iter_robust_accuracy", scripted)
    cfg = TrainConfig(recipe="fgsm", epochs=2, batch_size=32, eval_images=10)
    out = drive(train_classifier(cfg, data=_digits(64)), keep_events=True)
    warnings = [e.text for e in out.events if isinstance(e, Log) and "overfitting" in e.text]
    assert len(warnings) == 1 and warnings[0].startswith("Epoch 2: Catastrophic overfitting")
    assert "fell from 55.0% to 5.0%" in warnings[0]
    assert catastrophic_overfitting(out.result.history)


def test_catastrophic_overfitting_rules():
    def ev(clean, f, p):
        return {"clean_acc": clean, "fgsm_acc": f, "pgd_acc": p}

    healthy = [ev(0.95, 0.80, 0.75), ev(0.97, 0.88, 0.85), ev(0.975, 0.9, 0.88)]
    assert not catastrophic_overfitting(healthy)
    # PGD falls by more than 30 points while FGSM rises (Wong et al.'s picture)
    assert catastrophic_overfitting([ev(0.95, 0.8, 0.7), ev(0.96, 0.9, 0.3)])
    # a fall with FGSM falling too is not this failure (the attack just got stronger)
    assert not catastrophic_overfitting([ev(0.95, 0.8, 0.7), ev(0.9, 0.5, 0.3)])
    # the reference's end state: FGSM above clean (label leaking), PGD at 0
    assert catastrophic_overfitting([ev(0.974, 0.981, 0.0)])
    # a standard model at large eps: weak against both, not "FGSM only"
    assert not catastrophic_overfitting([ev(0.979, 0.288, 0.0)])
    # epochs without evaluation are skipped
    assert catastrophic_overfitting([ev(0.95, 0.8, 0.7), {"train_loss": 0.1}, ev(0.96, 0.9, 0.3)])


def test_global_rng_untouched_by_a_run():
    state = torch.get_rng_state()
    drive(
        train_classifier(
            TrainConfig(
                recipe="pgd", pgd_steps=2, epochs=1, batch_size=32, eval_images=8, eval_pgd_steps=2
            ),
            data=_digits(32),
        )
    )
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            (torch.rand(10, 3, 28, 28), torch.zeros(10, dtype=torch.long)),
            r"images must have shape \(N, 1, 28, 28\), not \(10, 3, 28, 28\)",
        ),
        (
            (torch.rand(10, 1, 28, 28) * 2, torch.zeros(10, dtype=torch.long)),
            r"pixels must be in \[0, 1\]",
        ),
        ((torch.rand(10, 1, 28, 28), torch.zeros(9, dtype=torch.long)), "need one label per image"),
        ((torch.rand(10, 1, 28, 28), torch.full((10,), 10)), "label 10 is out of range"),
        ((torch.rand(10, 1, 28, 28), torch.zeros(10)), "labels must be integer classes"),
        (torch.rand(10, 1, 28, 28), r"must be a pair \(x, y\)"),
    ],
)
def test_data_validation(data, message):
    with pytest.raises(ConfigError, match=message):
        drive(train_classifier(TrainConfig(eval_images=0), data=data))


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"batch_size 64 is larger than the training set "
        r"\(10 images\); allowed: 1 to 10",
    ):
        drive(train_classifier(TrainConfig(), data=_digits(10)))


def test_uint8_and_unbatched_channel_data_are_accepted():
    x, y = _digits(32)
    res = drive(
        train_classifier(
            TrainConfig(epochs=1, batch_size=16, eval_images=0),
            data=((x[:, 0] * 255).round().to(torch.uint8), y),
        )
    ).result
    assert res.history[0]["step"] == 2 and math.isfinite(res.metrics["train_loss"])


@pytest.mark.slow
def test_fgsm_adversarial_training_cuts_fgsm_error():
    """Headline figure: standard vs FGSM-mix adversarial training (Goodfellow et al.) at eps .25.

    Paper (maxout net, MNIST): FGSM error 89.4 % -> 17.9 %. PGD-20 exposes catastrophic
    overfitting (reference: FGSM adversarial training reaches 98.1 % FGSM and 0.0 % PGD)."""
    epochs = 3
    rows = {}
    for recipe in ("standard", "fgsm"):
        t = time.perf_counter()
        res = drive(
            train_classifier(TrainConfig(recipe=recipe, eps=0.25, epochs=epochs, eval_every=epochs))
        ).result
        rows[recipe] = (res.metrics, time.perf_counter() - t, res.history)
    print(
        f"\ndigits-cnn, 4,000 digits, {epochs} epochs, eval on 1,000 test digits at eps 0.25 "
        f"({torch.get_num_threads()} torch thread):"
    )
    for recipe, (m, wall, history) in rows.items():
        print(
            f"  {recipe:8s}: clean {m['clean_acc']:.1%}, FGSM error {1 - m['fgsm_acc']:.1%} "
            f"(acc {m['fgsm_acc']:.1%}), PGD-20 acc {m['pgd_acc']:.1%}; {wall:.0f} s "
            f"({sum(h['seconds'] for h in history):.0f} s training); catastrophic "
            f"overfitting flagged: {catastrophic_overfitting(history)}"
        )
    std, adv = rows["standard"][0], rows["fgsm"][0]
    assert std["clean_acc"] > 0.95 and adv["clean_acc"] > 0.93
    assert 1 - std["fgsm_acc"] > 0.5  # the standard model falls to FGSM at .25
    assert 1 - adv["fgsm_acc"] < 0.5 * (1 - std["fgsm_acc"])  # at least halves the FGSM error
