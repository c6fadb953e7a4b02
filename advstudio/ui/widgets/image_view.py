"""Shows a [0, 1] image array, scaled to fit, with crisp pixels for small images."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from advstudio.core.images import pixels_to_uint8


def array_to_qimage(pixels: np.ndarray) -> QImage:
    """(H, W, 1 or 3) float [0, 1] or uint8 -> a QImage that owns a copy of its data."""
    arr = pixels if pixels.dtype == np.uint8 else pixels_to_uint8(pixels)
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2 or arr.shape[2] == 1:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return img.copy()


class ImageView(QWidget):
    """An image with a caption underneath. ``set_pixels(None)`` shows ``placeholder``."""

    def __init__(self, caption: str = "", placeholder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.placeholder = placeholder
        self.picture = QLabel(placeholder, alignment=Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(QSize(160, 160))
        self.picture.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.picture.setStyleSheet(
            "QLabel { background: #2b2b2b; color: #bbb; border-radius: 4px; }"
        )
        self.picture.setWordWrap(True)
        self.caption = QLabel(caption, alignment=Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.caption)
        self.pixels: np.ndarray | None = None

    def set_pixels(self, pixels: np.ndarray | None, caption: str | None = None) -> None:
        self.pixels = pixels
        if caption is not None:
            self.caption.setText(caption)
        if pixels is None:
            self._pixmap = None
            self.picture.setPixmap(QPixmap())
            self.picture.setText(self.placeholder)
        else:
            self._pixmap = QPixmap.fromImage(array_to_qimage(pixels))
            self._rescale()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None or self._pixmap.isNull():
            return
        target = self.picture.size() - QSize(8, 8)
        small = self._pixmap.width() < target.width() / 2
        mode = (
            Qt.TransformationMode.FastTransformation
            if small
            else Qt.TransformationMode.SmoothTransformation
        )
        self.picture.setPixmap(
            self._pixmap.scaled(target, Qt.AspectRatioMode.KeepAspectRatio, mode)
        )
