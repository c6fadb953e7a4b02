"""Robust accuracy: per-image first-success bookkeeping on a toy model, the job's events, dry
run and CLI registration, cancellation, config messages, and a real ensemble on the CNN."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from advstudio.core.attacks import (
    ROBUST_ATTACKS,
    RobustConfig,
    RobustResult,
    robust_accuracy,
    run_robust,
)
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import ConfigError
from advstudio.core.jobkinds import JOB_KINDS, build_config
from advstudio.core.jobs import Log, Metrics, Progress, drive
from advstudio.core.models.registry import load_builtin

robust_module = importlib.import_module("advstudio.core.attacks.robust")


class Threshold(nn.Module):
    """Predicts class 1 iff pixel 0 > 0.5; pixel 1 is a tag the fake attacks read."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 10 * (x.flatten(1)[:, 0] - 0.5)
        return torch.stack([torch.zeros_like(z), z], 1)


def _images(pairs):
    return torch.tensor([[a, tag] for a, tag in pairs]).view(-1, 1, 1, 2)


# image: (pixel 0, tag); every label is 1. Fake attack "first" pushes pixel 0 down by 0.2
# on tags 0.1 and 0.3, "second" by 0.08 on tags 0.2 and 0.3. eps = 0.1: the pushes are
# projected onto the eps-ball before they are judged.
PAIRS = [
    (0.55, 0.1),  # 0: first breaks it (0.35 -> projected to 0.45)
    (0.55, 0.2),  # 1: first leaves it, second breaks it (0.47)
    (0.55, 0.3),  # 2: both could; the first gets the credit, second never sees it
    (0.45, 0.1),  # 3: wrong when clean: no attack sees it
    (0.55, 0.4),  # 4: nobody breaks it: robust
    (0.65, 0.1),
]  # 5: first pushes 0.2, only 0.1 counts (0.55): robust


@pytest.fixture
def fake_attacks(monkeypatch):
    calls: dict[str, list[list[float]]] = {"first": [], "second": []}

    def fake(name: str, tags: tuple[float, ...], push: float):
        def attack(model, x, y, eps, budget, seed):
            calls[name].append(x.flatten(1)[:, 0].tolist())
            out = x.clone()
            hit = torch.isclose(x.flatten(1)[:, 1:2], torch.tensor(tags)).any(1)
            out.view(len(x), -1)[hit, 0] -= push
            return out.clamp(0, 1)

        return attack

    monkeypatch.setitem(ROBUST_ATTACKS, "first", fake("first", (0.1, 0.3), 0.2))
    monkeypatch.setitem(ROBUST_ATTACKS, "second", fake("second", (0.2, 0.3), 0.08))
    return calls


def test_first_success_bookkeeping_on_a_toy_model(fake_attacks):
    x, y = _images(PAIRS), torch.ones(len(PAIRS), dtype=torch.long)
    res = robust_accuracy(Threshold(), x, y, 0.1, attacks=("first", "second"), batch_size=4)
    assert res.outcomes == ["first", "second", "first", "misclassified", "robust", "robust"]
    assert res.broken == {"first": 2, "second": 1}
    assert res.n_images == 6
    assert res.clean_accuracy == pytest.approx(5 / 6)
    assert res.robust_accuracy == pytest.approx(2 / 6)
    # FGSM alone lowers pixel 0 by eps everywhere: only image 5 (0.65 -> 0.55) survives
    assert res.fgsm_accuracy == pytest.approx(1 / 6)
    # batches of 4 then 2; each attack sees only the images still standing in its batch
    assert fake_attacks["first"] == [pytest.approx([0.55, 0.55, 0.55]), pytest.approx([0.55, 0.65])]
    assert fake_attacks["second"] == [pytest.approx([0.55]), pytest.approx([0.55, 0.65])]


def test_order_matters_for_the_credit_not_the_accuracy(fake_attacks):
    x, y = _images(PAIRS), torch.ones(len(PAIRS), dtype=torch.long)
    res = robust_accuracy(Threshold(), x, y, 0.1, attacks=("second", "first"))
    assert res.outcomes == ["first", "second", "second", "misclassified", "robust", "robust"]
    assert res.broken == {"second": 2, "first": 1}
    assert res.robust_accuracy == pytest.approx(2 / 6)


def test_events_and_running_metrics(fake_attacks):
    x, y = _images(PAIRS), torch.ones(len(PAIRS), dtype=torch.long)
    out = drive(
        robust_module.evaluate_robustness(
            Threshold(), x, y, 0.1, ("first", "second"), batch_size=4
        ),
        keep_events=True,
    )
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 2 * 3
    metrics = [e.values for e in out.events if isinstance(e, Metrics)]
    assert [m["images"] for m in metrics] == [4.0, 4.0, 6.0, 6.0]
    assert [m["robust_accuracy"] for m in metrics] == pytest.approx([1 / 4, 0 / 4, 2 / 6, 2 / 6])
    assert metrics[-1]["clean_accuracy"] == out.result.clean_accuracy
    assert all(isinstance(v, float) for m in metrics for v in m.values())


def test_cancel_restores_the_model_mode(digits):
    cnn = load_builtin("digits-cnn").train()
    job = robust_module.evaluate_robustness(
        cnn, digits[0][:8], digits[1][:8], 0.1, ("fgsm",), batch_size=4
    )
    next(job)
    next(job)
    assert not cnn.training
    job.close()
    assert cnn.training


def test_real_ensemble_on_the_cnn(digits):
    cnn = load_builtin("digits-cnn")
    x, y = digits[0][:24], digits[1][:24]
    res = robust_accuracy(
        cnn,
        x,
        y,
        0.15,
        attacks=("apgd-ce", "apgd-t", "simba"),
        steps=10,
        target_classes=2,
        max_queries=50,
    )
    print(
        f"\n24 digits at eps .15: clean {res.clean_accuracy:.2f}, FGSM alone "
        f"{res.fgsm_accuracy:.2f}, ensemble {res.robust_accuracy:.2f}, broken {res.broken}"
    )
    assert res.robust_accuracy <= res.fgsm_accuracy <= res.clean_accuracy
    assert res.robust_accuracy < res.clean_accuracy - 0.2
    assert sum(res.broken.values()) == round((res.clean_accuracy - res.robust_accuracy) * 24)


def test_dry_run_job_and_cli_kind():
    assert "robust" in JOB_KINDS
    config = build_config(
        "robust", {"eps": 0.2, "attacks": ["apgd-ce", "spsa"], "dry_run": True, "device": "cpu"}
    )
    out = drive(run_robust(config), keep_events=True)
    assert isinstance(out.events[0], Log) and "APGD-CE, then SPSA" in out.events[0].text
    res = out.result
    assert isinstance(res, RobustResult) and res.n_images == 8 and len(res.outcomes) == 8
    assert res.robust_accuracy <= res.clean_accuracy
    assert set(res.broken) == {"apgd-ce", "spsa"}


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"attacks": ["apgd-ce", "cw"]},
            "unknown attack 'cw'; the robust evaluation knows apgd-ce, apgd-dlr, apgd-t",
        ),
        ({"ensemble": "all"}, "ensemble must be one of standard, fast"),
        ({"attacks": ["spsa", "spsa"]}, "each attack once"),
        ({"eps": 1.5}, r"eps must be in \[0, 1\]"),
        ({"n_images": 0}, "n_images must be a whole number >= 1, not 0"),
        ({"steps": 0}, "steps must be a whole number >= 1, not 0"),
        ({"max_queries": 0}, "max_queries must be a whole number >= 1"),
    ],
)
def test_bad_configs_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        RobustConfig(**values)


def test_robust_accuracy_checks_its_arguments(digits):
    cnn = load_builtin("digits-cnn")
    x, y = digits[0][:2], digits[1][:2]
    with pytest.raises(ConfigError, match="unknown attack 'foo'"):
        robust_accuracy(cnn, x, y, 0.1, attacks=("foo",))
    with pytest.raises(ConfigError, match="2 labels for 3 images"):
        robust_accuracy(cnn, digits[0][:3], y, 0.1)


@pytest.fixture(scope="module")
def digits():
    return sweep_images(100, seed=0)


@pytest.mark.slow
def test_default_ensemble_job_on_50_digits():
    res = drive(run_robust(RobustConfig(eps=0.1, n_images=50, device="cpu"))).result
    print(
        f"\n50 digits at eps .1: clean {res.clean_accuracy:.2f}, FGSM alone "
        f"{res.fgsm_accuracy:.2f}, ensemble {res.robust_accuracy:.2f}, broken {res.broken}"
    )
    assert res.robust_accuracy < res.fgsm_accuracy
