"""A tab's place holder until its real widget can be built (after PyTorch has loaded)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class LazyTab(QWidget):
    """Holds a tab's place until its real widget can be built (after PyTorch has loaded)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.waiting = QLabel(
            f"The {name} lab opens when PyTorch has loaded…", alignment=Qt.AlignmentFlag.AlignCenter
        )
        self.layout_.addWidget(self.waiting)
        self.content: QWidget | None = None

    def set_content(self, widget: QWidget) -> None:
        self.waiting.hide()
        self.content = widget
        self.layout_.addWidget(widget)
