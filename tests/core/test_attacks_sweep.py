"""The epsilon sweep job: numbers, events, cancellation, dry run, CSV, config validation."""

from __future__ import annotations

import csv

import pytest
import torch

import advstudio.core.attacks.sweep as sweep_module
from advstudio.core.attacks import SweepConfig, SweepResult, run_sweep, sweep_to_csv
from advstudio.core.data import load_digits
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Log, Metrics, Preview, Progress, drive
from advstudio.core.models.registry import load_builtin


def test_sweep_numbers_and_events():
    config = SweepConfig(n_images=100, epsilons=(0, 0.1, 0.3), batch_size=50)
    out = drive(run_sweep(config), keep_events=True)
    result = out.result
    # the clean accuracy, computed here without the sweep's code
    x, y = load_digits("test")
    idx = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:100]
    with torch.no_grad():
        clean = float((load_builtin("digits-cnn")(x[idx]).argmax(1) == y[idx]).float().mean())
    curve = result.curves["fgsm"]
    print(
        f"\nFGSM sweep on 100 digits: eps {curve.epsilons} accuracy {curve.accuracy} "
        f"success {curve.success}"
    )
    assert result.clean_accuracy == pytest.approx(clean)
    assert curve.epsilons == [0.0, 0.1, 0.3]
    assert curve.accuracy[0] == pytest.approx(clean)
    assert curve.success[0] == 0.0
    assert curve.accuracy[2] < curve.accuracy[1] <= curve.accuracy[0]
    assert curve.success[2] > curve.success[1]
    assert not result.partial and result.n_images == 100

    metrics = [e for e in out.events if isinstance(e, Metrics)]
    assert [m.step for m in metrics] == [0, 1, 2]
    for m, eps, acc in zip(metrics, curve.epsilons, curve.accuracy):
        assert all(isinstance(v, float) for v in m.values.values())
        assert m.values["attack_index"] == 0.0 and m.values["eps"] == eps
        assert m.values["accuracy"] == acc
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 3 * 2
    assert isinstance(out.events[0], Log)
    previews = [e for e in out.events if isinstance(e, Preview)]
    assert len(previews) == 3 and previews[-1].data.curves["fgsm"].accuracy == curve.accuracy
    assert previews[0].data.curves["fgsm"].accuracy == curve.accuracy[:1]  # a copy


def test_fgsm_sign_is_computed_once_per_batch(monkeypatch):
    calls = []
    real = sweep_module.gradient_and_logits

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "gradient_and_logits", counting)
    drive(run_sweep(SweepConfig(n_images=40, batch_size=20, epsilons=(0, 0.1, 0.2, 0.3))))
    assert calls == [20, 20]


def test_closing_the_job_leaves_a_partial_result():
    config = SweepConfig(n_images=40, epsilons=(0, 0.1, 0.2), attacks=("fgsm", "bim"))
    result = SweepResult(config)
    job = run_sweep(config, result=result)
    last_preview = None
    for event in job:
        if isinstance(event, Preview):
            last_preview = event.data
        if isinstance(event, Metrics):
            job.close()
            break
    assert result.partial
    assert result.curves["fgsm"].epsilons == [0.0] and "bim" not in result.curves
    assert last_preview is None  # the first point's Metrics come before any preview


def test_dry_run_is_one_tiny_batch_with_every_attack():
    config = SweepConfig(
        attacks=("fgsm", "bim", "pgd", "mifgsm"), epsilons=(0, 0.2), targeted=True, dry_run=True
    )
    out = drive(run_sweep(config), keep_events=True)
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[-1].total == 4 * 2  # attacks x epsilons x one batch
    assert out.result.n_images == sweep_module.DRY_RUN_IMAGES
    assert not out.result.partial
    for curve in out.result.curves.values():
        assert curve.accuracy[0] == out.result.clean_accuracy  # eps 0: the clean images
        assert 0 <= curve.success[1] <= 1 and curve.accuracy[1] <= curve.accuracy[0]


def test_csv(tmp_path):
    result = SweepResult(SweepConfig(), n_images=10, clean_accuracy=0.9)
    result.curves["fgsm"] = sweep_module.SweepCurve("fgsm", [0.0, 0.1], [0.9, 0.5], [0.0, 0.44])
    path = sweep_to_csv(result, tmp_path / "sweep.csv")
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["attack", "eps", "accuracy", "success", "n_images", "partial"]
    assert rows[1:] == [
        ["fgsm", "0", "0.9", "0", "10", "True"],
        ["fgsm", "0.1", "0.5", "0.44", "10", "True"],
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(attacks=("deepfool",)), "unknown attack 'deepfool'"),
        (dict(attacks=()), "at least one attack"),
        (dict(attacks=("fgsm", "fgsm")), "each attack once"),
        (dict(epsilons=(0.1, 1.5)), "1.5"),
        (dict(epsilons=(-0.1,)), "-0.1"),
        (dict(n_images=0), "n_images"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_configs(bad, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**bad)


def test_too_many_images_is_a_config_error():
    with pytest.raises(ConfigError, match="at most 1000"):
        drive(run_sweep(SweepConfig(n_images=5000)))


@pytest.mark.slow
def test_full_fgsm_sweep_matches_the_reference_shape():
    result = drive(run_sweep(SweepConfig())).result
    acc = result.curves["fgsm"].accuracy
    print(f"\nFGSM on all 1,000 test digits at eps 0..0.3: {[round(a, 3) for a in acc]}")
    # reference CNN (REFERENCE_FIGURES.md): .971 .934 .863 .725 .501 .326 .210
    assert acc[0] > 0.95 and acc[-1] < 0.4
    assert all(b <= a + 0.01 for a, b in zip(acc, acc[1:]))
