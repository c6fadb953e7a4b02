"""The adversarial-input detector: its job, rates and costs, and classify-or-reject."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from advstudio.core.defence import (
    ClassifyOrReject,
    DetectorConfig,
    DetectorNet,
    load_detector,
    train_detector,
)
from advstudio.core.defence.detector import roc_auc
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Log, Metrics, Progress, drive
from advstudio.core.models.registry import load_builtin


class _Fixed(nn.Module):
    """A stand-in detector whose logit is the image's mean pixel minus ``shift``."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift))

    def forward(self, x):
        return x.flatten(1).mean(1) - self.shift


def test_classify_or_reject_shapes_and_threshold():
    clf = load_builtin("digits-cnn")
    x = torch.zeros(5, 1, 28, 28)
    x[3:] = 1.0  # mean 1: detector logit 0.5, probability 0.62; the others 0.38
    guard = ClassifyOrReject(clf, _Fixed(0.5), threshold=0.5)
    classes, rejected = guard.predict(x)
    assert classes.shape == (5,) and classes.dtype == torch.int64
    assert rejected.tolist() == [False, False, False, True, True]
    torch.testing.assert_close(guard.scores(x), torch.sigmoid(torch.tensor([-0.5] * 3 + [0.5] * 2)))
    with torch.no_grad():
        assert torch.equal(classes, clf(x).argmax(1))
    one_class, one_rejected = guard.predict(x[3])  # a single (C, H, W) image
    assert one_class.shape == (1,) and one_rejected.tolist() == [True]
    assert ClassifyOrReject(clf, _Fixed(0.5), threshold=0.0).predict(x)[1].all()
    assert not ClassifyOrReject(clf, _Fixed(0.5), threshold=1.0).predict(x)[1].any()
    with pytest.raises(ConfigError, match=r"threshold must be a probability in \[0, 1\]"):
        ClassifyOrReject(clf, _Fixed(0.5), threshold=1.5)


def test_classify_or_reject_runs_in_eval_mode_and_restores_modes():
    clf = load_builtin("digits-cnn").train()
    det = DetectorNet().train()
    guard = ClassifyOrReject(clf, det)
    x = torch.rand(4, 1, 28, 28)
    a, b = guard.predict(x), guard.predict(x)  # dropout off: the same answers twice
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert clf.training and det.training


def test_roc_auc_against_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    neg = torch.randint(0, 20, (50,), generator=g).float() / 20  # with ties
    pos = torch.randint(5, 25, (40,), generator=g).float() / 20
    pairs = (pos.unsqueeze(1) > neg.unsqueeze(0)).float() + 0.5 * (
        pos.unsqueeze(1) == neg.unsqueeze(0)
    ).float()
    assert roc_auc(neg, pos) == pytest.approx(pairs.mean().item())
    assert roc_auc(torch.zeros(3), torch.ones(3)) == 1.0
    assert roc_auc(torch.ones(3), torch.ones(3)) == 0.5


def test_short_run_detects_more_than_it_false_alarms(tmp_path):
    path = tmp_path / "det.pt"
    cfg = DetectorConfig(
        train_images=400, test_images=150, epochs=2, pgd_steps=5, save_path=str(path)
    )
    t = time.perf_counter()
    out = drive(train_detector(cfg), keep_events=True)
    wall = time.perf_counter() - t
    res = out.result
    m, cost = res.metrics, res.cost
    print(
        f"\nshort detector run ({wall:.0f} s): detection {m['detection_rate']:.1%} (FGSM "
        f"{m['detection_rate_fgsm']:.1%}, PGD {m['detection_rate_pgd']:.1%}), false alarms "
        f"{m['false_alarm_rate']:.1%}, AUC {m['auc']:.3f}"
    )
    # measured on this setting: detection about 80 %, false alarms 1 to 5 %, AUC 0.99
    assert m["detection_rate"] > m["false_alarm_rate"] + 0.3
    assert m["auc"] > 0.85
    assert set(m) == {
        "detection_rate",
        "false_alarm_rate",
        "auc",
        "detection_rate_fgsm",
        "detection_rate_pgd",
        "target_acc_fgsm",
        "target_acc_pgd",
        "detection_rate_fooling",
    }
    assert all(0 <= v <= 1 for v in m.values())
    assert cost["params_classifier"] == 1_199_882
    assert cost["params_detector"] == sum(p.numel() for p in DetectorNet().parameters())
    assert cost["params_total"] == cost["params_classifier"] + cost["params_detector"]
    assert all(cost[k] > 0 for k in cost)
    # events: progress of the attacks and of training, per-step and per-epoch metrics
    epochs = [e for e in out.events if isinstance(e, Metrics) and "epoch" in e.values]
    steps = [e for e in out.events if isinstance(e, Metrics) and "loss" in e.values]
    assert [e.values["epoch"] for e in epochs] == [1.0, 2.0]
    assert len(steps) == 2 * 7 and steps[-1].step == 14
    assert any(isinstance(e, Progress) and e.message.startswith("PGD examples") for e in out.events)
    assert isinstance(out.events[-1], Log) and "Detection rate" in out.events[-1].text
    # the saved detector is the returned one, and guards the classifier
    det = load_detector(str(path))
    for key, value in res.detector_state.items():
        assert torch.equal(det.state_dict()[key], value)
    guard = res.classify_or_reject(load_builtin("digits-cnn"))
    classes, rejected = guard.predict(torch.rand(3, 1, 28, 28))
    assert classes.shape == rejected.shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.pt"]


def test_dry_run_writes_nothing(tmp_path):
    out = drive(train_detector(DetectorConfig(dry_run=True, save_path=str(tmp_path / "d.pt"))))
    assert out.result.history and not list(tmp_path.iterdir())


def test_target_must_be_a_digit_classifier():
    from advstudio.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown built-in model"):
        drive(train_detector(DetectorConfig(target="no-such-model", dry_run=True)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attacks": ()}, r"attacks must be at least 1 of fgsm, pgd, not \[\]"),
        ({"attacks": ("fgsm", "cw")}, "attacks must be names from fgsm, pgd, not 'cw'"),
        ({"attacks": ("pgd", "pgd")}, r"attacks must be distinct names \(each once\)"),
        ({"eps": 0.0}, r"eps must be in \(0, 1\], not 0.0 \(pixel scale\)"),
        ({"eps": 1.5}, r"eps must be in \(0, 1\]"),
        ({"threshold": -0.1}, r"threshold must be in \[0, 1\], not -0.1 \(a probability\)"),
        ({"train_images": 0}, "train_images must be a whole number >= 1, not 0"),
        ({"lr": 0}, "lr must be a finite number > 0, not 0"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DetectorConfig(**kwargs)


@pytest.mark.slow
def test_detector_headline_rates():
    """Detector for the built-in CNN against FGSM and PGD-10 at eps 0.1 (Metzen et al. style)."""
    cfg = DetectorConfig(eps=0.1, train_images=4000, test_images=1000, epochs=3)
    t = time.perf_counter()
    res = drive(train_detector(cfg)).result
    wall = time.perf_counter() - t
    m, c = res.metrics, res.cost
    print(
        f"\ndetector, eps {cfg.eps}, FGSM + PGD-{cfg.pgd_steps}, 4,000 training digits, "
        f"{cfg.epochs} epochs, 1,000 test digits ({wall:.0f} s):"
    )
    print(
        f"  detection rate {m['detection_rate']:.1%} (FGSM {m['detection_rate_fgsm']:.1%}, "
        f"PGD {m['detection_rate_pgd']:.1%}; of inputs that fool the CNN "
        f"{m['detection_rate_fooling']:.1%}), false alarms {m['false_alarm_rate']:.1%}, "
        f"AUC {m['auc']:.3f}"
    )
    print(f"  CNN accuracy under FGSM {m['target_acc_fgsm']:.1%}, PGD {m['target_acc_pgd']:.1%}")
    print(
        f"  cost: {c['params_classifier']:,.0f} + {c['params_detector']:,.0f} parameters; "
        f"per single image {c['latency_classify_ms']:.2f} ms -> "
        f"{c['latency_guarded_ms']:.2f} ms; in batches of 250 "
        f"{c['batch_latency_classify_ms']:.3f} -> {c['batch_latency_guarded_ms']:.3f} ms/image"
    )
    assert m["detection_rate"] > 0.8 and m["false_alarm_rate"] < 0.1
    assert m["auc"] > 0.95
