"""One interface to every classifier advstudio can attack.

Four sources, each a :class:`ModelSpec`:

- ``builtin``: the digit classifiers shipped in ``resources/models`` (offline, instant);
- ``torchvision``: ImageNet classifiers from the torchvision zoo; their weights are downloaded on
  request (see :mod:`advstudio.core.models.download`) and cached by torch.hub;
- ``user``: a file of the user's in any standard format, described by its model card (see
  :mod:`advstudio.core.models.user`). Never unpickles arbitrary objects;
- ``memory``: an ``nn.Module`` of the user's Python session with its card, ``memory:<name>``
  (see :mod:`advstudio.core.models.memory`).

Every loader returns a :class:`Classifier` in eval mode on the requested device, built from a
card (:mod:`advstudio.core.models.card`): the built-ins' (digits mean/std), the zoo's
(ImageNet's) or the user's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch

from advstudio.core.errors import ModelLoadError
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.card import ModelCard
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.user import classifier_from_card, load_user_model

__all__ = ["load_model", "load_user_model", "load_builtin", "load_torchvision", "list_models"]
from advstudio.core.resources import resources_dir

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """A model the user can pick: ``key`` is stable (saved in settings and job configs)."""

    key: str
    name: str
    source: str  # "builtin" | "torchvision" | "user"
    description: str
    input_shape: tuple[int, int, int]
    num_classes: int


# torchvision zoo entries: key -> (builder name, weights enum name, description)
TORCHVISION_ZOO: dict[str, tuple[str, str, str]] = {
    "resnet18": ("resnet18", "ResNet18_Weights", "ResNet-18, ImageNet (44.7 MB download)"),
    "mobilenet_v3_small": (
        "mobilenet_v3_small",
        "MobileNet_V3_Small_Weights",
        "MobileNet V3 small, ImageNet (9.8 MB download)",
    ),
    "efficientnet_b0": (
        "efficientnet_b0",
        "EfficientNet_B0_Weights",
        "EfficientNet-B0, ImageNet (20.5 MB download)",
    ),
    "resnet50": ("resnet50", "ResNet50_Weights", "ResNet-50, ImageNet (97.8 MB download)"),
    "vgg16": ("vgg16", "VGG16_Weights", "VGG-16, ImageNet (528 MB download)"),
}


@lru_cache(maxsize=1)
def builtin_meta() -> dict[str, dict]:
    return json.loads((resources_dir() / "models" / "builtin.json").read_text())


# key -> (architecture, display name, role); a key ships when builtin.json lists it
BUILTINS = {
    "digits-cnn": ("digits-cnn", "Digits CNN (built-in)", "default target"),
    "digits-mlp": ("digits-mlp", "Digits MLP (built-in)", "default transfer surrogate"),
    "digits-cnn-pgd": (
        "digits-cnn",
        "Digits CNN, PGD-trained (built-in)",
        "adversarially trained (PGD, ε 0.1): the robust model to compare",
    ),
}


def builtin_specs() -> list[ModelSpec]:
    meta = builtin_meta()
    return [
        ModelSpec(
            key,
            name,
            "builtin",
            f"{ARCHITECTURES[arch].__doc__.split('.')[0]}; {role}; "
            f"{meta[key]['test_accuracy'] * 100:.1f} % on the bundled test digits",
            (1, 28, 28),
            10,
        )
        for key, (arch, name, role) in BUILTINS.items()
        if meta.get(key, {}).get("test_accuracy") is not None
    ]


def torchvision_specs() -> list[ModelSpec]:
    return [
        ModelSpec(f"torchvision:{key}", key, "torchvision", desc, (3, 224, 224), 1000)
        for key, (_, _, desc) in TORCHVISION_ZOO.items()
    ]


def memory_specs() -> list[ModelSpec]:
    """The in-memory models registered in this session, with their cards' geometry."""
    from advstudio.core.models.memory import PREFIX, registered

    return [
        ModelSpec(
            key,
            card.name or key[len(PREFIX) :],
            "memory",
            f"in-memory model ({'×'.join(map(str, card.input_shape))}, "
            f"{len(card.class_names)} classes)",
            card.input_shape,
            len(card.class_names),
        )
        for key, card in registered().items()
    ]


def list_models() -> list[ModelSpec]:
    return builtin_specs() + torchvision_specs() + memory_specs()


def builtin_card(key: str) -> ModelCard:
    """A built-in's card: 1×28×28 digits with its training set's mean/std."""
    meta = builtin_meta()[key]
    return ModelCard(
        (1, 28, 28), "digits", tuple(meta["mean"]), tuple(meta["std"]), name=BUILTINS[key][1]
    )


ZOO_CARD = ModelCard((3, 224, 224), "imagenet", IMAGENET_MEAN, IMAGENET_STD, resize=256)
"""The torchvision zoo's card: ImageNet geometry, resize and mean/std."""


def load_builtin(key: str, device: str | torch.device = "cpu") -> Classifier:
    """A built-in digit classifier (a key of :data:`BUILTINS`), eval mode."""
    if key not in BUILTINS or key not in builtin_meta():
        known = [k for k in BUILTINS if k in builtin_meta()]
        raise ModelLoadError(f"unknown built-in model {key!r}; known: {', '.join(known)}")
    net = ARCHITECTURES[BUILTINS[key][0]]()
    state = torch.load(
        resources_dir() / "models" / f"{key}.pt", map_location="cpu", weights_only=True
    )
    net.load_state_dict(state)
    return classifier_from_card(net, builtin_card(key), key).to(device).eval()


def torchvision_weights(key: str):
    """The torchvision weights enum member (DEFAULT) for a zoo key."""
    import torchvision.models as tvm

    if key not in TORCHVISION_ZOO:
        raise ModelLoadError(
            f"unknown torchvision model {key!r}; known: {', '.join(TORCHVISION_ZOO)}"
        )
    return getattr(tvm, TORCHVISION_ZOO[key][1]).DEFAULT


def weights_path(key: str) -> Path:
    """Where torch.hub caches this model's weights file."""
    url = torchvision_weights(key).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_torchvision(key: str, device: str | torch.device = "cpu") -> Classifier:
    """A torchvision ImageNet classifier from *cached* weights (download first, see download.py)."""
    import torchvision.models as tvm

    weights = torchvision_weights(key)
    path = weights_path(key)
    if not path.is_file():
        raise ModelLoadError(f"the weights of {key} are not downloaded yet ({path})")
    net = getattr(tvm, TORCHVISION_ZOO[key][0])(weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    card = replace(ZOO_CARD, classes=tuple(weights.meta["categories"]), name=key)
    return classifier_from_card(net, card, key).to(device).eval()


def load_model(
    key: str, device: str | torch.device = "cpu", card: ModelCard | dict | None = None
) -> Classifier:
    """Load by registry key: ``digits-cnn``, ``torchvision:resnet18``, ``file:/path/to/model.pt``,
    ``memory:<name>`` (an in-memory module, :mod:`advstudio.core.models.memory`).

    ``card`` (its fields as a dict, as a job config gives them) describes a ``file:`` model
    that has no card beside it; the built-ins and the zoo have their own, an in-memory model
    the one it was registered with.
    """
    from advstudio.core.models.memory import PREFIX, load_memory

    if key.startswith(PREFIX):
        return load_memory(key, device)
    if key.startswith("torchvision:"):
        return load_torchvision(key.split(":", 1)[1], device)
    if key.startswith("file:"):
        return load_user_model(key.split(":", 1)[1], device=device, card=card)
    return load_builtin(key, device)
