"""A tab whose lab has not landed yet: says what is coming, so the layout is honest."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

COMING = {
    "Attack": "FGSM, BIM, PGD and MI-FGSM, targeted or not; black-box transfer and query attacks; "
              "original / adversarial / amplified perturbation side by side; epsilon sweeps.",
    "GAN": "Train a GAN or a DCGAN on the bundled digits with live loss plots, a live sample grid "
           "and mode-collapse signals.",
    "Defence": "Adversarial training, a detector model, and Virtual Adversarial Training, with "
               "clean vs robust accuracy curves.",
    "Poisoning": "Label flips, BadNets backdoors and adversarial poisoning of the training set, "
                 "and what they cost the victim model.",
}


class PlaceholderTab(QWidget):
    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        label = QLabel(f"<h2>{name} lab: coming soon</h2><p>{COMING.get(name, '')}</p>",
                       alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        label.setMaximumWidth(560)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)


class LazyTab(QWidget):
    """Holds a tab's place until its real widget can be built (after PyTorch has loaded)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.waiting = QLabel(f"The {name} lab opens when PyTorch has loaded…",
                              alignment=Qt.AlignmentFlag.AlignCenter)
        self.layout_.addWidget(self.waiting)
        self.content: QWidget | None = None

    def set_content(self, widget: QWidget) -> None:
        self.waiting.hide()
        self.content = widget
        self.layout_.addWidget(widget)
