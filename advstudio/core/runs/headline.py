"""The one line a run history shows for a finished run: the headline figure of its kind (robust
accuracy of a robust run, the median distances of a boundary run, ...), read from the run's
summary, so a sweep no longer shows the last curve point as its "accuracy" and a robust run is
no longer blank."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# kind -> the summary keys to show, in order, each with its label and whether it is a share
HEADLINES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "evaluate": (("accuracy", "accuracy", True), ("n", "images", False)),
    "sweep": (("clean_accuracy", "clean", True), ("n_images", "images", False)),
    "robust": (
        ("robust_accuracy", "robust", True),
        ("clean_accuracy", "clean", True),
        ("fgsm_accuracy", "FGSM alone", True),
        ("eps", "ε", False),
    ),
    "boundary": (
        ("deepfool_median_l2", "DeepFool median L2", False),
        ("cw_median_l2", "C&W median L2", False),
        ("fgsm_median_linf", "FGSM median ε", False),
        ("n_images", "images", False),
    ),
    "defence-eval": (
        ("defence", "defence", False),
        ("plain_accuracy", "PGD", True),
        ("bpda_accuracy", "BPDA", True),
        ("eot_accuracy", "EoT", True),
    ),
    "patch": (("success", "success", True), ("area", "area", True), ("target", "target", False)),
    "universal": (("held_out_rate", "fooling (held out)", True), ("eps", "ε", False)),
    "certify-smoothing": (
        ("base_accuracy", "base accuracy", True),
        ("abstain_rate", "abstained", True),
        ("largest_radius", "largest radius", False),
        ("sigma", "σ", False),
    ),
    "certify-ibp": (
        ("verified_accuracy", "verified", True),
        ("pgd_accuracy", "PGD", True),
        ("clean_accuracy", "clean", True),
        ("eps", "ε", False),
    ),
    "train": (("clean_acc", "clean", True), ("fgsm_acc", "FGSM", True), ("pgd_acc", "PGD", True)),
    "vat": (("test_acc", "test accuracy", True), ("labelled", "labels", False)),
    "detector": (
        ("detection_rate", "detected", True),
        ("false_alarm_rate", "false alarms", True),
    ),
    "gan": (("frechet", "Fréchet", False), ("classes_covered", "classes", False)),
    "poison": (("clean_acc", "clean", True), ("attack_success", "attack success", True)),
}
# what a kind not listed shows: the figures most runs have
FALLBACK = (
    ("accuracy", "accuracy", True),
    ("clean_acc", "clean", True),
    ("frechet", "Fréchet", False),
    ("loss", "loss", False),
)


def _figure(value: Any, share: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if share:
        return f"{100 * value:.1f} %"
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


def headline(kind: str, summary: Mapping[str, Any] | None, most: int = 4) -> str:
    """``"robust 73.0 %, clean 96.0 %, FGSM alone 85.0 %, ε 0.1"`` for a run's summary."""
    summary = summary or {}
    keys = HEADLINES.get(kind.replace("_", "-"), FALLBACK)
    parts = [
        f"{label} {_figure(summary[key], share)}"
        for key, label, share in keys
        if summary.get(key) is not None
    ][:most]
    if summary.get("partial") is True:
        parts.append("partial")
    return ", ".join(parts)
