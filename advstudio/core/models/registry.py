"""One interface to every classifier advstudio can attack.

Three sources, each a :class:`ModelSpec`:

- ``builtin``: the digit classifiers shipped in ``resources/models`` (offline, instant);
- ``torchvision``: ImageNet classifiers from the torchvision zoo; their weights are downloaded on
  request (see :mod:`advstudio.core.models.download`) and cached by torch.hub;
- ``user``: a file of the user's: TorchScript, or a ``state_dict`` for one of the known
  architectures. Loaded with ``weights_only=True``: never unpickles arbitrary objects.

Every loader returns a :class:`Classifier` in eval mode on the requested device.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from advstudio.core.data import DIGIT_CLASSES
from advstudio.core.errors import ModelLoadError, UnsafeModelFileError
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.classifier import Classifier
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
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights",
                           "MobileNet V3 small, ImageNet (9.8 MB download)"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights",
                        "EfficientNet-B0, ImageNet (20.5 MB download)"),
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
    "digits-cnn-pgd": ("digits-cnn", "Digits CNN, PGD-trained (built-in)",
                       "adversarially trained (PGD, ε 0.1): the robust model to compare"),
}


def builtin_specs() -> list[ModelSpec]:
    meta = builtin_meta()
    return [
        ModelSpec(key, name, "builtin",
                  f"{ARCHITECTURES[arch].__doc__.split('.')[0]}; {role}; "
                  f"{meta[key]['test_accuracy'] * 100:.1f} % on the bundled test digits",
                  (1, 28, 28), 10)
        for key, (arch, name, role) in BUILTINS.items()
        if meta.get(key, {}).get("test_accuracy") is not None
    ]


def torchvision_specs() -> list[ModelSpec]:
    return [ModelSpec(f"torchvision:{key}", key, "torchvision", desc, (3, 224, 224), 1000)
            for key, (_, _, desc) in TORCHVISION_ZOO.items()]


def list_models() -> list[ModelSpec]:
    return builtin_specs() + torchvision_specs()


def _digits_classifier(net: nn.Module, key: str, name: str) -> Classifier:
    meta = builtin_meta().get(key, {"mean": [0.1307], "std": [0.3081]})
    return Classifier(net, (1, 28, 28), DIGIT_CLASSES, meta["mean"], meta["std"], name=name)


def load_builtin(key: str, device: str | torch.device = "cpu") -> Classifier:
    """A built-in digit classifier (a key of :data:`BUILTINS`), eval mode."""
    if key not in BUILTINS or key not in builtin_meta():
        known = [k for k in BUILTINS if k in builtin_meta()]
        raise ModelLoadError(f"unknown built-in model {key!r}; known: {', '.join(known)}")
    net = ARCHITECTURES[BUILTINS[key][0]]()
    state = torch.load(resources_dir() / "models" / f"{key}.pt", map_location="cpu",
                       weights_only=True)
    net.load_state_dict(state)
    return _digits_classifier(net, key, BUILTINS[key][1]).to(device).eval()


def torchvision_weights(key: str):
    """The torchvision weights enum member (DEFAULT) for a zoo key."""
    import torchvision.models as tvm

    if key not in TORCHVISION_ZOO:
        raise ModelLoadError(f"unknown torchvision model {key!r}; known: {', '.join(TORCHVISION_ZOO)}")
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
    meta = weights.meta
    return Classifier(net, (3, 224, 224), meta["categories"], IMAGENET_MEAN, IMAGENET_STD,
                      name=key, resize_to=256).to(device).eval()


def load_user_model(path: str | Path, architecture: str | None = None,
                    device: str | torch.device = "cpu") -> Classifier:
    """The user's own model file.

    - TorchScript (``torch.jit.save``): assumed to take 1x28x28 digits normalised like the
      built-ins when it outputs 10 classes, else 3x224x224 ImageNet input.
    - A ``state_dict`` (``torch.save(model.state_dict())``) for one of :data:`ARCHITECTURES`
      (``architecture`` names it; when omitted, each known architecture is tried).

    Raises :class:`ModelLoadError` with a message saying what did not fit, and
    :class:`UnsafeModelFileError` for pickles holding arbitrary objects.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"model file is empty: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path.name} is not a PyTorch model file (expected a TorchScript archive or a "
            "state_dict saved with torch.save)")
    with zipfile.ZipFile(path) as zf:
        is_script = any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    if is_script:
        return _load_torchscript(path, device)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError with a long text
        raise UnsafeModelFileError(
            f"{path.name} holds Python objects other than tensors; advstudio does not unpickle "
            "arbitrary objects (it could run code). Save the model's state_dict "
            "(torch.save(model.state_dict(), path)) or a TorchScript file instead.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path.name} does not hold a state_dict (a dict of tensors)")
    candidates = [architecture] if architecture else list(ARCHITECTURES)
    errors = []
    for arch in candidates:
        if arch not in ARCHITECTURES:
            raise ModelLoadError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
        net = ARCHITECTURES[arch]()
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            errors.append(f"{arch}: {str(exc).splitlines()[0]}")
            continue
        return _digits_classifier(net, arch, f"{path.name} ({arch})").to(device).eval()
    raise ModelLoadError(
        f"the weights in {path.name} fit none of the known architectures "
        f"({', '.join(candidates)}): " + "; ".join(errors))


def _load_torchscript(path: Path, device) -> Classifier:
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a loadable TorchScript file: {exc}") from exc
    net.eval()
    with torch.no_grad():
        for shape, classes in (((1, 28, 28), DIGIT_CLASSES), ((3, 224, 224), None)):
            try:
                out = net(torch.zeros(1, *shape))
            except Exception:
                continue
            if out.dim() == 2:
                if shape[0] == 1 and out.shape[1] == 10:
                    return _digits_classifier(net, "user", f"{path.name} (TorchScript)").to(device)
                names = [f"class {i}" for i in range(out.shape[1])]
                return Classifier(net, shape, names, IMAGENET_MEAN, IMAGENET_STD,
                                  name=f"{path.name} (TorchScript)", resize_to=256).to(device).eval()
    raise ModelLoadError(
        f"{path.name}: the TorchScript model accepts neither 1x28x28 nor 3x224x224 input, or "
        "does not return (N, classes) logits")


def load_model(key: str, device: str | torch.device = "cpu") -> Classifier:
    """Load by registry key: ``digits-cnn``, ``torchvision:resnet18``, ``file:/path/to/model.pt``."""
    if key.startswith("torchvision:"):
        return load_torchvision(key.split(":", 1)[1], device)
    if key.startswith("file:"):
        return load_user_model(key.split(":", 1)[1], device=device)
    return load_builtin(key, device)
