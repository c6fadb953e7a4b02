"""One line over a lab tab naming what its results are about: the current model (from its card:
input shape, classes, the pixel scale ε refers to) and the current image. It follows the app
state, so a tab never shows results without saying for which model they were computed."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from advstudio.ui.state import AppState

KNOWN_NORMALISATIONS = {  # name -> (mean, std): the ones model cards usually carry
    "MNIST": ((0.1307,), (0.3081,)),
    "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR-10 (the common std)": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "CIFAR-100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def known_normalisation(mean, std) -> str:
    """The name of a well-known mean/std pair (to 1e-3), or ``""``."""
    for name, (m, s) in KNOWN_NORMALISATIONS.items():
        if len(mean) == len(m) and len(std) == len(s):
            pairs = zip((*mean, *std), (*m, *s))
            if all(abs(float(a) - b) <= 1e-3 for a, b in pairs):
                return name
    return ""


def _numbers(values) -> str:
    return ", ".join(f"{float(v):.4g}" for v in values)


def model_text(model, key: str = "") -> tuple[str, str]:
    """(one line, tooltip) describing ``model`` (a Classifier) for a header."""
    if model is None:
        return "Model: none yet", "The model list fills in once PyTorch has loaded."
    c, h, w = model.input_shape
    colour = {1: "grey", 3: "RGB"}.get(c, f"{c} channels")
    name = getattr(model, "name", "") or key
    shown = f"{name} ({key})" if key and key != name else name
    mean = model.mean.flatten().tolist()
    std = model.std.flatten().tolist()
    identity = all(m == 0 for m in mean) and all(s == 1 for s in std)
    lo, hi = getattr(model, "value_range", (0.0, 1.0))
    if identity and (lo, hi) == (0.0, 1.0):
        scale = "takes [0, 1] pixels as they are"
    else:
        parts = []
        if (lo, hi) != (0.0, 1.0):
            parts.append(f"mapped to [{lo:g}, {hi:g}]")
        if not identity:
            numbers = f"mean {_numbers(mean)} / std {_numbers(std)}"
            name = known_normalisation(mean, std)
            parts.append(
                f"normalised with {name} mean/std ({numbers})"
                if name
                else f"normalised with {numbers}"
            )
        scale = "then " + " and ".join(parts) + " inside the model"
    line = (
        f"Model: {shown} · {c}×{h}×{w} {colour}, {model.num_classes} classes · "
        f"ε in [0, 1] pixel units ({scale})"
    )
    card = getattr(model, "card", None)
    tooltip = line if card is None else f"{line}\nModel card: {card}"
    return line, tooltip


def image_text(image) -> str:
    if image is None:
        return "Image: none (drop one on the window)"
    name = image.path.name if getattr(image, "path", None) else "an image"
    colour = {1: "grey", 3: "RGB", 4: "RGBA"}.get(image.channels, f"{image.channels} channels")
    return f"Image: {name}, {image.pixels.shape[1]}×{image.height} {colour}"


class ContextHeader(QLabel):
    """``Model: … · Image: …`` for the current model and image, kept up to date."""

    def __init__(self, state: AppState, show_image: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.show_image = state, show_image
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setStyleSheet("QLabel { padding: 0 2px; }")
        state.model_changed.connect(lambda _m: self.refresh())
        state.image_changed.connect(lambda _i: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        line, tooltip = model_text(self.state.model, self.state.model_key)
        if self.show_image:
            line = f"{line} · {image_text(self.state.image)}"
        self.full_text = line
        self.setToolTip(tooltip)
        self._elide()

    def _elide(self) -> None:
        width = max(self.width(), 50)
        self.setText(
            self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight, width)
        )

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()
