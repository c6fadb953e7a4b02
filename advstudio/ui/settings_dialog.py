"""Preferences: the compute device (auto = CUDA > MPS > CPU)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget


class SettingsDialog(QDialog):
    def __init__(self, devices: list[str], current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (best available)", "auto")
        for d in devices:
            self.device_combo.addItem(d.upper() if d != "cpu" else "CPU", d)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(index, 0))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Compute device:", self.device_combo)
        form.addRow(QLabel("Models are moved to the new device when you press OK."))
        form.addRow(buttons)

    @property
    def device(self) -> str:
        return self.device_combo.currentData()
