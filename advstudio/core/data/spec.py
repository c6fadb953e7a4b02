"""The names of the shared data-set choice, torch-free so configs can check their fields
cheaply: ``dataset`` strings (see :mod:`advstudio.core.data.sets` for what each loads), splits
and fit policies (:mod:`advstudio.core.data.fit`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advstudio.core import validate as v

KINDS = ("digits", "folder", "torchvision", "imagenet-folder")
TORCHVISION = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}
SPLITS = ("train", "test", "all")
EXAMPLES = (
    "digits",
    "folder:<path>",
    *(f"torchvision:{n}" for n in TORCHVISION),
    "imagenet-folder:<path>",
)
FIT_POLICIES = ("none", "resize", "center-crop")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``dataset`` string: ``kind`` (one of :data:`KINDS`) and ``arg`` (the folder or
    the torchvision name; ``""`` for the digits)."""

    kind: str
    arg: str = ""

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        check_dataset(text)
        kind, _, arg = text.partition(":")
        return cls(kind, arg)

    def __str__(self) -> str:
        return self.kind if self.kind == "digits" else f"{self.kind}:{self.arg}"


def check_dataset(value: Any, name: str = "dataset") -> str:
    """The validate-style check of a ``dataset`` field (every config uses it). The folder's
    existence is checked when the set is loaded, so a config built elsewhere still parses."""
    if isinstance(value, str):
        kind, sep, arg = value.partition(":")
        if value == "digits":
            return value
        if sep and kind in ("folder", "imagenet-folder") and arg.strip():
            return value
        if sep and kind == "torchvision" and arg in TORCHVISION:
            return value
    v.fail(name, f"one of {', '.join(EXAMPLES)}", value)


def check_split(value: Any, name: str = "split") -> str:
    return v.choice(name, value, SPLITS, "which part of the data set")


def check_fit(value: Any, name: str = "fit") -> str:
    return v.choice(name, value, FIT_POLICIES, "what to do when the images do not fit the model")


def describe_shape(shape: tuple[int, ...]) -> str:
    """(3, 32, 32) -> ``"32×32 RGB"``; (1, 28, 28) -> ``"28×28 grey"``."""
    c, h, w = shape
    return f"{h}×{w} " + {1: "grey", 3: "RGB", 4: "RGBA"}.get(c, f"{c}-channel")
