"""Preferences: the compute device (auto = CUDA > MPS > CPU), the data folder and the theme.

Why the data folder applies at the next start: it holds the run store, downloaded data sets
and kept models, which the open run store and loaded models point into; ``app.py`` exports it
as ``ADVSTUDIO_HOME`` before anything opens it. The theme is a palette on the application
(Fusion style for light and dark, so every widget follows it), applied at once.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from advstudio.ui.widgets.plot_theme import restyle_all

THEMES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))
_DARK = {
    QPalette.ColorRole.Window: "#2b2b2b",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1e1e1e",
    QPalette.ColorRole.AlternateBase: "#2b2b2b",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#353535",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.Highlight: "#2a82da",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#353535",
    QPalette.ColorRole.ToolTipText: "#e6e6e6",
    QPalette.ColorRole.PlaceholderText: "#9a9a9a",
}
_DISABLED_ROLES = (
    QPalette.ColorRole.WindowText,
    QPalette.ColorRole.Text,
    QPalette.ColorRole.ButtonText,
)
_system_style: str | None = None  # the platform's style, restored by "system"


def apply_theme(theme: str) -> None:
    """Give the application the palette of ``theme`` (one of :data:`THEMES`)."""
    global _system_style
    app = QApplication.instance()
    if _system_style is None:
        _system_style = app.style().name()
    if theme == "system":
        app.setStyle(_system_style)
        app.setPalette(app.style().standardPalette())
    else:
        app.setStyle("Fusion")
        palette = app.style().standardPalette()
        if theme == "dark":
            for role, colour in _DARK.items():
                palette.setColor(role, QColor(colour))
            # setColor(role, ...) sets every group: disabled buttons and fields looked enabled
            disabled = QPalette.ColorGroup.Disabled
            for role in _DISABLED_ROLES:
                palette.setColor(disabled, role, QColor("#808080"))
        app.setPalette(palette)
    restyle_all()  # pyqtgraph's plots do not follow the palette by themselves


class SettingsDialog(QDialog):
    def __init__(
        self,
        devices: list[str],
        current: str,
        parent: QWidget | None = None,
        data_folder: str = "",
        theme: str = "system",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (best available)", "auto")
        for d in devices:
            self.device_combo.addItem(d.upper() if d != "cpu" else "CPU", d)
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(current), 0))
        self.folder_edit = QLineEdit(data_folder, placeholderText="the platform's default")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        self.theme_combo = QComboBox()
        for key, text in THEMES:
            self.theme_combo.addItem(text, key)
        self.theme_combo.setCurrentIndex(max(self.theme_combo.findData(theme), 0))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Compute device:", self.device_combo)
        form.addRow(QLabel("Models are moved to the new device when you press OK."))
        form.addRow("Data folder:", folder_row)
        form.addRow(
            QLabel(
                "Runs, downloaded data sets and kept models; used from the next start.",
                wordWrap=True,
            )
        )
        form.addRow("Theme:", self.theme_combo)
        form.addRow(buttons)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder", self.folder_edit.text())
        if path:
            self.folder_edit.setText(path)

    @property
    def device(self) -> str:
        return self.device_combo.currentData()

    @property
    def data_folder(self) -> str:
        return self.folder_edit.text().strip()

    @property
    def theme(self) -> str:
        return self.theme_combo.currentData()
