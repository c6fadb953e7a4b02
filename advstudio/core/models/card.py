"""The model card: what a model file does not say about itself, as data.

A card is a TOML file beside the model, named by the model's stem (``model.pt2`` →
``model.toml``)::

    input_shape = [3, 32, 32]          # C, H, W the net takes
    classes = "cifar10"                # a known set (KNOWN_CLASSES) or a list of names
    mean = [0.4914, 0.4822, 0.4465]    # optional: absent = the net takes the pixels as they are
    std = [0.2471, 0.2435, 0.2616]
    value_range = [0, 1]               # optional: the pixel scale the net takes ([0, 255] too)
    resize = 256                       # optional: short side before the centre crop (ImageNet)
    architecture = "wrn-28-10"         # state_dict / safetensors files only

Nothing is normalised unless the card says so: an absent mean/std is the identity, because a
silently assumed normalisation is a wrong threat model (the ε-ball would be measured in another
space than the one the user means). The :class:`~advstudio.core.models.classifier.Classifier`
is built from the card and nothing else.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from advstudio.core import validate
from advstudio.core.errors import ConfigError, ModelLoadError

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
KNOWN_CLASSES: dict[str, int] = {
    "digits": 10,
    "fashion-mnist": 10,
    "cifar10": 10,
    "cifar100": 100,
    "svhn": 10,
    "imagenet": 1000,
}
"""Class sets a card may name, with their size; names come from :func:`class_names`."""

REQUIRED = ("input_shape", "classes")


class MissingCardError(ModelLoadError):
    """A model file has no card (or an incomplete one). ``missing`` names the absent fields,
    ``card_path`` where the card is looked for, ``probe`` what a probe forward found (or None):
    the UI opens the card dialog pre-filled from it."""

    def __init__(
        self, message: str, missing: tuple[str, ...], card_path: Path, probe: Any = None
    ) -> None:
        super().__init__(message)
        self.missing, self.card_path, self.probe = missing, card_path, probe


def class_names(classes: str | list[str]) -> list[str]:
    """The class names of a known set or the list itself. ImageNet's come from torchvision's
    weight metadata (offline); CIFAR-100's are numbered."""
    if isinstance(classes, list):
        return list(classes)
    if classes in ("digits", "svhn"):
        return [str(i) for i in range(10)]
    if classes == "cifar10":
        return list(CIFAR10)
    if classes == "fashion-mnist":
        return list(FASHION)
    if classes == "imagenet":
        from torchvision.models import ResNet18_Weights

        return list(ResNet18_Weights.DEFAULT.meta["categories"])
    return [f"class {i}" for i in range(KNOWN_CLASSES[classes])]


@dataclass(frozen=True)
class ModelCard:
    """A model's input geometry, pixel scale, normalisation and classes (see the module doc).

    ``mean``/``std`` are in the units of ``value_range`` (torchvision's ImageNet values with the
    default [0, 1]); ``None`` means no normalisation.
    """

    input_shape: tuple[int, int, int]
    classes: str | tuple[str, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    resize: int | None = None
    architecture: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        shape = self.input_shape
        if (
            not isinstance(shape, (list, tuple))
            or len(shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape)
        ):
            validate.fail("input_shape", "three positive whole numbers [C, H, W]", shape)
        object.__setattr__(self, "input_shape", tuple(shape))
        if isinstance(self.classes, str):
            validate.choice("classes", self.classes, KNOWN_CLASSES, "or give a list of class names")
        elif (
            not isinstance(self.classes, (list, tuple))
            or len(self.classes) < 2
            or not all(isinstance(c, str) for c in self.classes)
        ):
            validate.fail(
                "classes",
                f"one of {', '.join(KNOWN_CLASSES)} or a list of at least two names",
                self.classes,
            )
        else:
            object.__setattr__(self, "classes", tuple(self.classes))
        c = shape[0]
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is None:
                continue
            if (
                not isinstance(value, (list, tuple))
                or len(value) not in (1, c)
                or not all(validate._is_number(v) for v in value)
            ):
                validate.fail(key, f"1 or {c} numbers (one per channel of {list(shape)})", value)
            object.__setattr__(self, key, tuple(float(v) for v in value))
        if (self.mean is None) != (self.std is None):
            raise ConfigError("mean and std must be given together (or neither)")
        if self.std is not None and any(s <= 0 for s in self.std):
            validate.fail("std", "positive numbers", list(self.std))
        lo_hi = self.value_range
        if (
            not isinstance(lo_hi, (list, tuple))
            or len(lo_hi) != 2
            or not all(validate._is_number(v) for v in lo_hi)
            or lo_hi[0] >= lo_hi[1]
        ):
            validate.fail("value_range", "[low, high] with low < high", lo_hi)
        object.__setattr__(self, "value_range", (float(lo_hi[0]), float(lo_hi[1])))
        if self.resize is not None:
            validate.whole("resize", self.resize, max(shape[1:]))
        if self.architecture is not None:
            validate.text("architecture", self.architecture, empty=False)
        validate.text("name", self.name)

    @property
    def class_names(self) -> list[str]:
        return class_names(list(self.classes) if isinstance(self.classes, tuple) else self.classes)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML-able values; ``None`` fields left out."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {k: v for k, v in out.items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "the card") -> ModelCard:
        """A card from plain values (a TOML table, a job config's ``card``); names the missing
        and unknown fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where} has unknown fields {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}")
        return cls(**data)


def card_path(model_path: str | Path) -> Path:
    """Where a model file's card lives: its stem with ``.toml``, beside it."""
    return Path(model_path).with_suffix(".toml")


def read_card(model_path: str | Path) -> ModelCard | None:
    """The card beside ``model_path``, or None when there is none."""
    path = card_path(model_path)
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"the model card {path} is not valid TOML: {exc}") from exc
    try:
        return ModelCard.from_dict(data, where=f"the model card {path.name}")
    except ConfigError as exc:
        raise ModelLoadError(
            f"{path.name}: {exc} (edit {path} or delete it to be asked again)"
        ) from exc


def write_card(card: ModelCard, model_path: str | Path) -> Path:
    """Write ``card`` beside ``model_path``; returns the card's path."""
    path = card_path(model_path)
    path.write_text(tomli_w.dumps(card.to_dict()), encoding="utf-8")
    return path
