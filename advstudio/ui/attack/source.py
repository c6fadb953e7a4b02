"""What a bottom panel of the Attack tab runs on: the current image, or ``n`` images of a data
set (the one data-set widget of every lab, :mod:`advstudio.ui.widgets.dataset_picker`, with its
fit policy). The choice and the count are remembered per panel in QSettings."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from advstudio.ui.widgets.dataset_picker import DatasetPicker

SOURCES = (("the current image", "image"), ("images of a data set", "dataset"))


class ImageSource(QWidget):
    """``key``: the panel's settings group. ``data_always``: show the data-set picker in image
    mode too (the input-defence panel fits its detector on the set's clean images)."""

    def __init__(
        self,
        settings: QSettings,
        key: str,
        *,
        n_default: int = 20,
        data_always: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings, self.key, self.data_always = settings, key, data_always
        self.mode = QComboBox()
        for text, value in SOURCES:
            self.mode.addItem(text, value)
        self.mode.setToolTip(
            "Measure the current image (Image tab), or a seeded random subset of the data set "
            "below at its own size and colour (per-image results, medians, recorded as a run)"
        )
        self.n_images = QSpinBox(
            minimum=1, maximum=1000, value=int(settings.value(f"{key}/n_images", n_default))
        )
        self.n_images.setToolTip(
            "How many images of the data set (a seeded random subset; the bundled test "
            "digits hold 1,000)"
        )
        self.n_images.valueChanged.connect(lambda n: settings.setValue(f"{key}/n_images", n))
        self.count_label = QLabel("images")
        self.data = DatasetPicker(settings, fit=True)
        self.data.changed.connect(  # the bundled test digits hold 1,000; other sets more
            lambda d: self.n_images.setMaximum(1000 if d == "digits" else 1_000_000)
        )
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Run on"))
        row.addWidget(self.mode)
        row.addWidget(self.n_images)
        row.addWidget(self.count_label)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.data)
        self.mode.setCurrentIndex(max(self.mode.findData(settings.value(f"{key}/source")), 0))
        self.mode.currentIndexChanged.connect(self._on_mode)
        self._on_mode()

    def on_dataset(self) -> bool:
        return self.mode.currentData() == "dataset"

    def use_dataset(self, on: bool = True) -> None:
        self.mode.setCurrentIndex(self.mode.findData("dataset" if on else "image"))

    def _on_mode(self) -> None:
        on = self.on_dataset()
        self.settings.setValue(f"{self.key}/source", self.mode.currentData())
        self.n_images.setVisible(on)
        self.count_label.setVisible(on)
        self.data.setVisible(on or self.data_always)
