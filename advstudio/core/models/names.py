"""The architectures the registry builds, by name, and what images each takes: torch-free, so a
job config can check its ``arch`` against its data set cheaply (``__post_init__``).

- the digit built-ins (:mod:`advstudio.core.models.architectures`): grey images, at most 10
  classes (the trainers resize a grey set to their 1×28×28);
- ``small-cnn`` (:mod:`advstudio.core.models.small`): any C×H×W, any class count, small
  enough to train on a CPU;
- the CIFAR networks (:mod:`advstudio.core.models.cifar`): RGB, at least 8×8, any class count;
- torchvision's classifiers: RGB, at least 32×32 (ViT: square, a multiple of 16).
"""

from __future__ import annotations

DIGIT_ARCHITECTURES = ("digits-cnn", "digits-mlp")
GENERIC_ARCHITECTURES = ("small-cnn",)
CIFAR_NAMES = ("preact-resnet18", "cifar-resnet18", "wrn-28-10", "wrn-34-10")
TORCHVISION_ARCHITECTURES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "wide_resnet50_2",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b1",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "densenet121",
    "convnext_tiny",
    "vit_b_16",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
)
ALL_ARCHITECTURES = (
    *DIGIT_ARCHITECTURES,
    *GENERIC_ARCHITECTURES,
    *CIFAR_NAMES,
    *TORCHVISION_ARCHITECTURES,
)
"""Every name :func:`advstudio.core.models.builders.build` knows (a test checks)."""
DIGIT_CLASS_COUNT = 10


def _words(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{h}×{w} " + {1: "grey", 3: "RGB"}.get(c, f"{c}-channel")


def fit_problem(arch: str, shape: tuple[int, int, int], classes: int) -> str | None:
    """Why ``arch`` cannot train on ``shape`` (C, H, W) images of ``classes`` classes, in
    words, or None when it can. An unknown name is a problem too."""
    c, h, w = (int(s) for s in shape)
    what = f"{_words((c, h, w))} images of {classes} classes"
    if arch not in ALL_ARCHITECTURES:
        return f"unknown architecture {arch!r}; known: {', '.join(ALL_ARCHITECTURES)}"
    if classes < 2:
        return f"{arch} needs at least 2 classes; the data set has {classes}"
    if arch in DIGIT_ARCHITECTURES:
        if c != 1:
            return (
                f"{arch} takes 1×28×28 grey digits, not {what}; choose small-cnn or a "
                "colour architecture (preact-resnet18, cifar-resnet18, wrn-28-10, resnet18)"
            )
        if classes > DIGIT_CLASS_COUNT:
            return f"{arch} has {DIGIT_CLASS_COUNT} outputs, not enough for {what}"
        return None
    if arch in GENERIC_ARCHITECTURES:
        return None if min(h, w) >= 4 else f"{arch} needs images of at least 4×4, not {what}"
    if c != 3:
        return f"{arch} takes RGB (3-channel) images, not {what}; choose small-cnn"
    if arch in CIFAR_NAMES:
        return None if min(h, w) >= 8 else f"{arch} needs images of at least 8×8, not {what}"
    if arch.startswith("vit_") and (h != w or h % 16):
        return f"{arch} takes square images whose side is a multiple of 16, not {what}"
    return None if min(h, w) >= 32 else f"{arch} needs images of at least 32×32, not {what}"


def fitting(shape: tuple[int, int, int], classes: int, names=ALL_ARCHITECTURES) -> list[str]:
    """The ``names`` that can train on such images, in order."""
    return [a for a in names if fit_problem(a, shape, classes) is None]
