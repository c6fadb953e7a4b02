"""Defences: adversarial training, virtual adversarial training and a detector of adversarial
inputs, with the clean/FGSM/PGD accuracy that measures them.

Modules, one job each:

- ``config``: :class:`TrainConfig`, :class:`VatConfig`, :class:`DetectorConfig` (no torch);
- ``defaults``: which architectures fit a data set and :func:`defaults_for` (data set,
  architecture): the settings a training starts from (no torch);
- ``train``: the job :func:`train_classifier` (standard, FGSM mix, fast FGSM with random
  start, PGD adversarial training) and its step, :class:`AdversarialTrainer`;
- ``vat``: :func:`vat_loss` (Miyato et al.) and the semi-supervised job :func:`train_vat`;
- ``detector``: :class:`DetectorNet`, the job :func:`train_detector`, :class:`ClassifyOrReject`;
- ``robustness``: :func:`robust_accuracy` (clean, FGSM, PGD at one eps) and
  :func:`catastrophic_overfitting`;
- ``common``: data sets for any architecture (:func:`training_sets`), held-out subsets, the
  optimiser and its schedule, atomic files and cards, checkpoints, the private RNG.

Pixels are in [0, 1]; adversarial training and detector eps are L-inf radii on that scale,
VAT's ``xi`` and ``eps`` are L2 lengths over all pixels. The names below are importable from
this package; each module is imported when one of its names is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "TrainConfig": "config",
    "TrainResult": "train",
    "train_classifier": "train",
    "AdversarialTrainer": "train",
    "build_classifier": "train",
    "catastrophic_overfitting": "robustness",
    "overfitting_warning": "robustness",
    "RECIPES": "config",
    "ARCHS": "config",
    "defaults_for": "defaults",
    "archs_for": "defaults",
    "VatConfig": "config",
    "VatResult": "vat",
    "train_vat": "vat",
    "vat_loss": "vat",
    "vat_perturbation": "vat",
    "DetectorConfig": "config",
    "DetectorResult": "detector",
    "train_detector": "detector",
    "DetectorNet": "detector",
    "ClassifyOrReject": "detector",
    "load_detector": "detector",
    "robust_accuracy": "robustness",
    "iter_robust_accuracy": "robustness",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from advstudio.core.defence.config import ARCHS, RECIPES, DetectorConfig, TrainConfig, VatConfig
    from advstudio.core.defence.defaults import archs_for, defaults_for
    from advstudio.core.defence.detector import (
        ClassifyOrReject,
        DetectorNet,
        DetectorResult,
        load_detector,
        train_detector,
    )
    from advstudio.core.defence.robustness import (
        catastrophic_overfitting,
        iter_robust_accuracy,
        overfitting_warning,
        robust_accuracy,
    )
    from advstudio.core.defence.train import (
        AdversarialTrainer,
        TrainResult,
        build_classifier,
        train_classifier,
    )
    from advstudio.core.defence.vat import VatResult, train_vat, vat_loss, vat_perturbation


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"advstudio.core.defence.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'advstudio.core.defence' has no attribute {name!r}")
