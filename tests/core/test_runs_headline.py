"""The run history's one line per run: each kind's headline figure from its summary."""

from __future__ import annotations

from advstudio.core.jobkinds import JOB_KINDS
from advstudio.core.runs.headline import HEADLINES, headline


def test_every_job_kind_has_a_headline():
    assert set(JOB_KINDS) <= set(HEADLINES)


def test_a_robust_run_shows_its_robust_accuracy_first():
    summary = {
        "images": 200.0,
        "clean_accuracy": 0.96,
        "robust_accuracy": 0.73,
        "fgsm_accuracy": 0.85,
        "eps": 0.1,
        "n_images": 200,
    }
    assert headline("robust", summary) == "robust 73.0 %, clean 96.0 %, FGSM alone 85.0 %, ε 0.1"


def test_a_sweep_shows_its_clean_accuracy_not_the_last_curve_point():
    # the summary's "accuracy" is the last point of the last curve (0 at a large ε)
    summary = {
        "eps": 0.3,
        "accuracy": 0.0,
        "clean_accuracy": 0.979,
        "n_images": 1000,
        "partial": True,
    }
    assert headline("sweep", summary) == "clean 97.9 %, images 1,000, partial"


def test_underscored_kinds_missing_keys_and_unknown_kinds():
    summary = {"defence": "jpeg", "plain_accuracy": 0.5, "bpda_accuracy": 0.025}
    assert headline("defence_eval", summary) == "defence jpeg, PGD 50.0 %, BPDA 2.5 %"
    assert headline("something-new", {"loss": 0.31234, "step": 3}) == "loss 0.312"
    assert headline("robust", None) == ""
