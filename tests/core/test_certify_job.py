"""The certification jobs: dry runs give plain, JSON-ready results; configs are checked."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from advstudio.core.certify.job import (
    IbpConfig,
    SmoothingConfig,
    run_ibp,
    run_smoothing,
    smoothing_to_csv,
)
from advstudio.core.data import load_digits
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Progress, drive


def test_smoothing_dry_run(tmp_path):
    outcome = drive(
        run_smoothing(SmoothingConfig(dry_run=True, device="cpu", sigma=0.5)), keep_events=True
    )
    result = outcome.result
    assert (result.n0, result.n, len(result.images)) == (10, 50, 1)
    assert len(result.certified_accuracy) == len(result.radii) == 5
    assert result.certified_accuracy == sorted(result.certified_accuracy, reverse=True)
    assert max(im.radius for im in result.images) <= result.largest_radius
    image = result.images[0]
    first_label = int(load_digits("test")[1][0])
    assert image.label == first_label and image.base_prediction == first_label
    assert (image.radius > 0) == (image.prediction != -1)
    progress = [e for e in outcome.events if isinstance(e, Progress)]
    # two phases, each counting its own image: the base attacks, then CERTIFY
    phases = [(p.phase.split(" ")[0], p.done, p.total) for p in progress if p.done]
    assert phases == [("DeepFool", 1, 1), ("certifying", 1, 1)]
    json.dumps(dataclasses.asdict(result))
    rows = list(csv.DictReader(smoothing_to_csv(result, tmp_path / "s.csv").open()))
    assert [r["label"] for r in rows] == [str(first_label)] and rows[0]["sigma"] == "0.5"


def test_ibp_dry_run():
    result = drive(run_ibp(IbpConfig(dry_run=True, device="cpu", eps=0.002))).result
    assert result.n_images == len(result.verified) == len(result.pgd_robust) == 4
    assert all(r for v, r in zip(result.verified, result.pgd_robust) if v)
    assert result.verified_accuracy <= result.pgd_accuracy <= 1
    json.dumps(dataclasses.asdict(result))


@pytest.mark.parametrize(
    ("config", "values", "message"),
    [
        (SmoothingConfig, {"sigma": 0}, "^sigma must be"),
        (SmoothingConfig, {"radii": "0.5"}, "^radii must be"),
        (SmoothingConfig, {"radii": (0.5, -1.0)}, "^radii must be"),
        (SmoothingConfig, {"data": "cifar"}, "^data must be one of digits"),
        (IbpConfig, {"eps": 0.0}, "^eps must be"),
        (IbpConfig, {"n_images": 0}, "^n_images must be"),
    ],
)
def test_configs_are_checked(config, values, message):
    with pytest.raises(ConfigError, match=message):
        config(**values)


def test_configs_build_from_plain_values_as_advstudio_run_gives_them(monkeypatch):
    """The kinds the lead registers in core/jobkinds.py, built as from TOML / JSON."""
    from advstudio.core import jobkinds

    kinds = {
        "certify-smoothing": jobkinds.JobKind(
            "certify-smoothing",
            "advstudio.core.certify.job:SmoothingConfig",
            "advstudio.core.certify.job:run_smoothing",
            "randomised smoothing",
        ),
        "certify-ibp": jobkinds.JobKind(
            "certify-ibp",
            "advstudio.core.certify.job:IbpConfig",
            "advstudio.core.certify.job:run_ibp",
            "interval bound propagation",
        ),
    }
    monkeypatch.setattr(jobkinds, "JOB_KINDS", kinds)
    smoothing = jobkinds.build_config("certify-smoothing", {"radii": [0, 0.5], "sigma": 1})
    assert smoothing.radii == (0, 0.5) and smoothing.sigma == 1.0
    assert jobkinds.config_to_dict(smoothing)["radii"] == [0, 0.5]
    assert jobkinds.build_config("certify-ibp", {"eps": 0.3}).eps == 0.3
    with pytest.raises(ConfigError, match="^radii must be a list"):
        jobkinds.build_config("certify-smoothing", {"radii": "0.5"})


def test_smoothing_dry_run_with_smooth_pgd_writes_both_bounds(tmp_path):
    config = SmoothingConfig(dry_run=True, device="cpu", sigma=0.5, smooth_pgd=True)
    result = drive(run_smoothing(config)).result
    assert result.smooth_pgd_radii == [0.25] and len(result.empirical_accuracy) == 1
    assert result.empirical_accuracy[0] <= (result.images[0].prediction == result.images[0].label)
    rows = list(csv.DictReader(smoothing_to_csv(result, tmp_path / "s.csv").open()))
    assert "smooth_pgd_l2" in rows[0]
