"""The victim-training job and the fraction sweep: dry runs, bad configs, cancel, a short real
run; measured figures under ``-m slow``."""

from __future__ import annotations

import math
import tempfile
import time

import numpy as np
import pytest
import torch

from advstudio.core.data import load_digits
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Log, Metrics, Preview, Progress, drive
from advstudio.core.poisoning import PoisonConfig, PoisonCurve, run_fraction_sweep, run_poisoning
from advstudio.core.poisoning.job import train_victim


def events_of(out, kind):
    return [e for e in out.events if isinstance(e, kind)]


# ----------------------------------------------------------------------------- dry runs


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attack="backdoor"),
        dict(attack="backdoor", defence="sanitize", trigger_pattern="checker", source=3),
        dict(attack="label-flip", fraction=0.1),
        dict(
            attack="label-flip",
            fraction=0.3,
            flip="targeted",
            target=7,
            defence="adversarial-training",
        ),
        dict(attack="adversarial", adv_attack="pgd", adv_steps=2, fraction=0.1),
        dict(
            attack="adversarial",
            adv_labels="flip",
            fraction=0.1,
            defence="sanitize",
            sanitize={"methods": "knn"},
        ),
        dict(attack="none", defence="sanitize"),
    ],
)
def test_dry_run_of_every_attack_and_defence(overrides):
    config = PoisonConfig(dry_run=True, **overrides)
    out = drive(run_poisoning(config), keep_events=True)
    r = out.result
    assert r.n_train <= 400 and len(r.history) == 1 and r.history[0]["epoch"] == 1
    assert 0.0 <= r.clean_acc <= 1.0
    assert math.isnan(r.attack_success) != config.targeted
    epoch_metrics = [e for e in events_of(out, Metrics) if "epoch" in e.values]
    assert len(epoch_metrics) == 1 and "clean_acc" in epoch_metrics[0].values
    assert "fgsm_acc" not in epoch_metrics[0].values  # the dry run's evaluation on noise
    assert ("attack_success" in epoch_metrics[0].values) == config.targeted
    if config.attack != "none":
        previews = {e.name: e.data for e in events_of(out, Preview)}
        images, labels = previews["poisoned"], previews["poisoned_labels"]
        assert isinstance(images, np.ndarray) and images.shape[1:] == (28, 28)
        assert len(images) == len(labels) == min(16, r.n_poisoned)
    if config.defence == "sanitize":
        assert r.sanitize is not None and r.n_train == 400 - r.sanitize.n_flagged
        assert r.n_poisoned_trained == r.sanitize.missed
    else:
        assert r.sanitize is None and r.n_train == 400


def test_fraction_sweep_dry_run_gives_a_curve_with_a_clean_baseline():
    config = PoisonConfig(attack="backdoor", dry_run=True)
    out = drive(run_fraction_sweep(config, [0.0, 0.05, 0.1]), keep_events=True)
    curve = out.result
    assert isinstance(curve, PoisonCurve) and not curve.partial
    assert curve.fractions == [0.0, 0.05, 0.1]
    assert [r.n_poisoned for r in curve.results] == [0, 20, 40]
    assert all(not math.isnan(s) for s in curve.attack_success)  # baseline measured too
    points = [e.values for e in events_of(out, Metrics)]
    assert [p["fraction"] for p in points] == [0.0, 0.05, 0.1]
    snapshots = [e.data for e in events_of(out, Preview) if e.name == "poison_curve"]
    assert [len(s.fractions) for s in snapshots] == [1, 2, 3]
    assert [s.partial for s in snapshots] == [True, True, False]
    assert all(p.message.startswith("fraction ") for p in events_of(out, Progress))
    phases = {p.phase for p in events_of(out, Progress)}
    assert "fraction 0.05 (2 of 3): training the victim" in phases
    assert all(p.startswith("fraction ") for p in phases)
    with pytest.raises(ConfigError, match="fraction must be in"):
        drive(run_fraction_sweep(config, [0.1, 1.2]))
    with pytest.raises(ConfigError, match="at least one fraction"):
        drive(run_fraction_sweep(config, []))


# ----------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(attack="poison"), "attack must be one of none, label-flip, backdoor, adversarial"),
        (dict(fraction=1.01), r"fraction must be in \[0, 1\]"),
        (dict(fraction=-0.2), r"fraction must be in \[0, 1\]"),
        (dict(target=10), r"target must be a whole number from 0 to 9, not 10 \(a class\)"),
        (
            dict(source=11),
            r"source must be a whole number from -1 to 9, not 11 \(a class, or -1 for all\)",
        ),
        (dict(trigger_size=30), r"size must be in 1\.\.28"),
        (dict(trigger_row=27), r"row must be in 0\.\.25"),
        (dict(flip="sideways"), "flip must be one of random, targeted"),
        (dict(defence="prayer"), "defence must be one of none, sanitize, adversarial-training"),
        (dict(sanitize={"methods": "loss+vibes"}), "one or more of loss, knn"),
        (dict(adv_eps=0.0), r"adv_eps must be in \(0, 1\]"),
        (dict(epochs=0), "epochs must be a whole number >= 1"),
        (dict(lr=0.0), "lr must be a finite number > 0"),
    ],
)
def test_bad_config_is_refused_naming_the_allowed_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        PoisonConfig(**overrides)


def test_fraction_that_poisons_nothing_fails_at_the_first_step():
    job = run_poisoning(PoisonConfig(attack="label-flip", fraction=0.0001, source=2))
    n2 = int((load_digits("train")[1] == 2).sum())
    with pytest.raises(ConfigError, match=f"class 2 has {n2} samples"):
        next(job)


# ----------------------------------------------------------------------------- real runs


def test_the_victim_trains_without_scratch_files_and_cancels_cleanly(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    job = run_poisoning(PoisonConfig(attack="backdoor", fraction=0.05, epochs=3))
    steps, epochs = 0, []
    for event in job:
        if isinstance(event, Metrics) and "epoch" in event.values:
            epochs.append(event.values)
        elif isinstance(event, Metrics) and "loss" in event.values:  # the victim is training
            steps += 1
            if steps == 70:  # in epoch 2
                break
    else:
        pytest.fail("the job ended before the victim's 70th training step")
    job.close()
    assert [e["epoch"] for e in epochs] == [1.0] and "attack_success" in epochs[0]
    assert not list(tmp_path.iterdir())


def test_the_victim_equals_an_uninterrupted_training_run():
    from advstudio.core.defence.config import TrainConfig
    from advstudio.core.defence.train import train_classifier

    x, y = load_digits("train")
    data = (x[::20], y[::20])  # 200 digits
    test = (x[1::40], y[1::40])
    config = PoisonConfig(attack="none", epochs=2, batch_size=50, seed=3)
    out = drive(train_victim(config, data, test, None), keep_events=True)
    split, history = out.result
    headers = [e for e in events_of(out, Log) if "standard training" in e.text]
    assert len(headers) == 1
    whole = drive(
        train_classifier(TrainConfig(epochs=2, batch_size=50, seed=3, eval_images=0), data)
    ).result
    assert [h["epoch"] for h in history] == [1.0, 2.0]
    assert all(torch.equal(split.state_dict[k], whole.state_dict[k]) for k in whole.state_dict)


def test_short_real_backdoor_run_learns_the_trigger():
    started = time.perf_counter()
    out = drive(
        run_poisoning(PoisonConfig(attack="backdoor", fraction=0.1, epochs=1)), keep_events=True
    )
    r = out.result
    print(
        f"\nbackdoor 10 %, 1 epoch: clean {r.clean_acc:.3f}, success {r.attack_success:.3f}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    # measured: clean 0.925, success 0.993 after one epoch
    assert r.n_poisoned == 400 and r.n_train == 4000
    assert r.attack_success >= 0.9 and r.clean_acc >= 0.88
    assert r.history[0]["attack_success"] == r.attack_success
    assert r.train.state_dict and r.train.classifier() is not None
    logs = [e.text for e in events_of(out, Log)]
    assert r.logs == logs
    assert any("400 of 4000 training digits poisoned" in t for t in logs)
    assert any("copied once" in t for t in logs)
    steps = [e for e in events_of(out, Metrics) if "loss" in e.values]
    assert len(steps) == 63  # 4,000 / 64 per epoch, forwarded from train_classifier
    progress = events_of(out, Progress)
    assert progress[-1].done == progress[-1].total == 63
    assert progress[-1].phase == "training the victim"
