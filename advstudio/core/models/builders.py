"""Architectures a state_dict or safetensors file may name in its card (``architecture``).

The digit built-ins (1×28×28, 10 classes), ``small-cnn`` (any C×H×W), the CIFAR networks of
:mod:`advstudio.core.models.cifar` (RobustBench's module names) and torchvision's classifiers,
each built with the card's number of classes and no download.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from advstudio.core.errors import ModelLoadError
from advstudio.core.models import cifar
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.names import GENERIC_ARCHITECTURES, TORCHVISION_ARCHITECTURES
from advstudio.core.models.small import SmallCNN

CIFAR_ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "preact-resnet18": cifar.PreActResNet18,
    "cifar-resnet18": cifar.CifarResNet18,
    "wrn-28-10": lambda n: cifar.WideResNet(28, 10, n),
    "wrn-34-10": lambda n: cifar.WideResNet(34, 10, n),
}


def architecture_names() -> list[str]:
    return [
        *ARCHITECTURES,
        *GENERIC_ARCHITECTURES,
        *CIFAR_ARCHITECTURES,
        *TORCHVISION_ARCHITECTURES,
    ]


def build(
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    state_keys: set[str] = frozenset(),
) -> nn.Module:
    """A fresh ``name`` network with ``num_classes`` outputs for ``input_shape`` images.

    ``state_keys`` (the file's keys) pick variants the name leaves open: PreAct-ResNet-18 with
    its final BatchNorm (``bn.weight``).
    """
    if name in ARCHITECTURES:
        if num_classes != 10 or tuple(input_shape) != (1, 28, 28):
            raise ModelLoadError(
                f"{name} takes 1×28×28 digits and has 10 classes; the card "
                f"says {list(input_shape)} and {num_classes} classes"
            )
        return ARCHITECTURES[name]()
    if name == "small-cnn":
        return SmallCNN(input_shape[0], num_classes)
    if name == "preact-resnet18":
        return cifar.PreActResNet18(num_classes, bn_before_fc="bn.weight" in state_keys)
    if name in CIFAR_ARCHITECTURES:
        return CIFAR_ARCHITECTURES[name](num_classes)
    if name in TORCHVISION_ARCHITECTURES:
        import torchvision.models as tvm

        extra = {"image_size": input_shape[1]} if name.startswith("vit_") else {}
        return getattr(tvm, name)(weights=None, num_classes=num_classes, **extra)
    raise ModelLoadError(f"unknown architecture {name!r}; known: {', '.join(architecture_names())}")
