"""Which networks a data set can train, and the recipe's settings each pair starts from:
torch-free, so the configs (``__post_init__``), the Defence and Poisoning tabs and the CLI share
one answer.

:func:`defaults_for` gives the :class:`~advstudio.core.defence.config.TrainConfig` fields for a
(data set, architecture) pair:

- the digit networks: today's settings, unchanged (Adam 1e-3, batch 64, eps 0.1, PGD-7);
- a CIFAR-class network (PreAct-ResNet-18, ResNet-18 with the CIFAR stem, WideResNets,
  torchvision's) on a colour set: Rice et al. 2020's PGD-AT baseline, which RobustBench's
  CIFAR-10 L-inf entries follow: SGD lr 0.1, momentum 0.9, weight decay 5e-4, the piecewise
  schedule (÷10 at 50 % and 75 % of the run), batch 128, 200 epochs, PGD-10 at eps 8/255 with
  step 2/255 (the ``"pgd"`` recipe's step is eps / 4). SVHN: lr 0.01 (Rice et al.);
- ``small-cnn``: Adam 1e-3, batch 128, 30 epochs, eps 8/255 (colour) or 0.1 (grey), PGD-10:
  a run a CPU finishes.
"""

from __future__ import annotations

from typing import Any

from advstudio.core.data.spec import check_dataset
from advstudio.core.errors import ConfigError
from advstudio.core.models.names import (
    ALL_ARCHITECTURES,
    DIGIT_ARCHITECTURES,
    GENERIC_ARCHITECTURES,
    fit_problem,
    fitting,
)

Geometry = tuple[tuple[int, int, int], int]
KNOWN_GEOMETRY: dict[str, Geometry] = {
    "digits": ((1, 28, 28), 10),
    "torchvision:mnist": ((1, 28, 28), 10),
    "torchvision:fashion-mnist": ((1, 28, 28), 10),
    "torchvision:cifar10": ((3, 32, 32), 10),
    "torchvision:cifar100": ((3, 32, 32), 100),
    "torchvision:svhn": ((3, 32, 32), 10),
}
"""(C, H, W) and class count of the sets whose shape is known without reading them; a folder's
is known once it is loaded (the jobs check it then)."""
TRAINING_ARCHITECTURES = (
    *DIGIT_ARCHITECTURES,
    *GENERIC_ARCHITECTURES,
    "preact-resnet18",
    "cifar-resnet18",
    "wrn-28-10",
    "wrn-34-10",
    "resnet18",
    "resnet34",
    "resnet50",
    "wide_resnet50_2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "vgg11_bn",
)
"""The architectures the tabs offer for training, in order (every name of
``models.names.ALL_ARCHITECTURES`` is accepted by the configs)."""

ARCH_LABELS = {
    "digits-cnn": "Digits CNN",
    "digits-mlp": "Digits MLP",
    "small-cnn": "Small CNN (any shape; CPU)",
    "preact-resnet18": "PreAct ResNet-18",
    "cifar-resnet18": "ResNet-18, CIFAR stem",
    "wrn-28-10": "WideResNet-28-10",
    "wrn-34-10": "WideResNet-34-10",
}


def arch_label(name: str) -> str:
    """The name a list shows for an architecture (torchvision's say so)."""
    return ARCH_LABELS.get(name, f"{name} (torchvision)")


DIGIT_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "constant",
    "batch_size": 64,
    "epochs": 5,
    "eps": 0.1,
    "pgd_steps": 7,
}
"""The digit networks' settings (TrainConfig's own defaults: a test checks they agree)."""


def dataset_geometry(dataset: str) -> Geometry | None:
    """((C, H, W), classes) of a set known without reading it, else None (folders)."""
    return KNOWN_GEOMETRY.get(check_dataset(dataset))


def probe_geometry(dataset: str) -> Geometry | None:
    """:func:`dataset_geometry`, or for a folder what its listing and first image say
    (cheap enough for the UI thread; None when unreadable)."""
    known = dataset_geometry(dataset)
    if known is not None:
        return known
    from advstudio.core.data.sets import geometry

    return geometry(dataset)


def check_arch_data(
    arch: str,
    dataset: str,
    shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
) -> None:
    """:class:`ConfigError` when ``arch`` cannot train on ``dataset``: always for an unknown
    name; for the shape and class count when they are given (a loaded set) or known
    (:data:`KNOWN_GEOMETRY`). A folder's shape is checked when it is loaded."""
    if arch not in ALL_ARCHITECTURES:
        raise ConfigError(
            f"arch must be one of {', '.join(ALL_ARCHITECTURES)}, not {arch!r} "
            "(the network architecture)"
        )
    if shape is None:
        known = dataset_geometry(dataset)
        if known is None:
            return
        shape, classes = known
    problem = fit_problem(arch, tuple(shape), int(classes))
    if problem:
        raise ConfigError(f"arch {arch!r} does not fit the data set {dataset}: {problem}")


def archs_for(
    dataset: str, shape: tuple[int, int, int] | None = None, classes: int | None = None
) -> list[str]:
    """The :data:`TRAINING_ARCHITECTURES` that fit ``dataset`` (its known or given geometry;
    all of them when neither is known)."""
    if shape is None:
        known = dataset_geometry(dataset)
        if known is None:
            return list(TRAINING_ARCHITECTURES)
        shape, classes = known
    return fitting(tuple(shape), int(classes), TRAINING_ARCHITECTURES)


def defaults_for(
    dataset: str, arch: str, shape: tuple[int, int, int] | None = None
) -> dict[str, Any]:
    """The TrainConfig fields a (data set, architecture) pair starts from (see the module
    doc): ``optimizer``, ``lr``, ``momentum``, ``weight_decay``, ``schedule``,
    ``batch_size``, ``epochs``, ``eps``, ``pgd_steps``. ``shape``: a loaded set's (C, H, W)
    when the name does not tell it (folders: grey or colour decides small-cnn's eps)."""
    if arch in DIGIT_ARCHITECTURES:
        return dict(DIGIT_DEFAULTS)
    if shape is None:
        known = dataset_geometry(dataset)
        shape = known[0] if known else (3, 32, 32)
    colour = shape[0] > 1
    if arch in GENERIC_ARCHITECTURES:
        return {
            **DIGIT_DEFAULTS,
            "batch_size": 128,
            "epochs": 30,
            "eps": 8 / 255 if colour else 0.1,
            "pgd_steps": 10,
        }
    return {
        "optimizer": "sgd",
        "lr": 0.01 if dataset == "torchvision:svhn" else 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "piecewise",
        "batch_size": 128,
        "epochs": 200,
        "eps": 8 / 255,
        "pgd_steps": 10,
    }
