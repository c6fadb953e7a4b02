"""Ask the user for a model's card when its file has none, pre-filled from a probe.

The card says what a file cannot: its input shape, classes and whether (and how) its input is
normalised. The dialog never guesses a normalisation: mean/std stay empty (none) unless typed.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from advstudio.core.errors import AdvStudioError
from advstudio.core.models.card import KNOWN_CLASSES, ModelCard


def _numbers(text: str) -> tuple[float, ...] | None:
    text = text.strip()
    return tuple(float(v) for v in text.replace(",", " ").split()) if text else None


class ModelCardDialog(QDialog):
    """Input shape (C, H, W), classes (a known set or names, comma-separated), optional
    mean/std (pixel scale [0, 1]) and, for weights files, the architecture."""

    def __init__(
        self, path: Path, missing: tuple[str, ...], probe=None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Describe {path.name}")
        form = QFormLayout(self)
        found = probe.describe() if probe is not None else "no probe (a weights file)"
        form.addRow(
            QLabel(
                f"{path.name} has no model card ({Path(path).stem}.toml). "
                f"Missing: {', '.join(missing)}; {found}."
            )
        )
        shape = getattr(probe, "input_shape", None) or (3, 32, 32)
        self.dims = []
        for name, value in zip(("channels", "height", "width"), shape):
            box = QSpinBox()
            box.setRange(1, 4096)
            box.setValue(value)
            form.addRow(name, box)
            self.dims.append(box)
        self.classes = QComboBox()
        self.classes.setEditable(True)
        self.classes.addItems(list(KNOWN_CLASSES))
        k = getattr(probe, "num_classes", None)
        known = [n for n, size in KNOWN_CLASSES.items() if size == k]
        self.classes.setCurrentText(known[0] if known else "")
        form.addRow("classes (a set, or names separated by commas)", self.classes)
        self.mean, self.std = QLineEdit(), QLineEdit()
        self.mean.setPlaceholderText("none: the model takes [0, 1] pixels as they are")
        form.addRow("mean (per channel)", self.mean)
        form.addRow("std (per channel)", self.std)
        self.architecture = QLineEdit()
        self.architecture.setPlaceholderText("e.g. wrn-28-10, resnet18 (weights files only)")
        form.addRow("architecture", self.architecture)
        self.error = QLabel()
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.card: ModelCard | None = None

    def build(self) -> ModelCard:
        """The card as filled in; raises ConfigError / ValueError naming the bad field."""
        text = self.classes.currentText().strip()
        classes = text if text in KNOWN_CLASSES else tuple(c.strip() for c in text.split(","))
        return ModelCard(
            tuple(b.value() for b in self.dims),
            classes,
            _numbers(self.mean.text()),
            _numbers(self.std.text()),
            architecture=self.architecture.text().strip() or None,
        )

    def _accept(self) -> None:
        try:
            self.card = self.build()
        except (AdvStudioError, ValueError) as exc:
            self.error.setText(str(exc))
            return
        self.accept()

    @classmethod
    def ask(
        cls, parent: QWidget | None, path: Path, missing: tuple[str, ...], probe=None
    ) -> ModelCard | None:
        """The card the user gave, or None when they cancelled. Patchable in tests."""
        dialog = cls(path, missing, probe, parent)
        return dialog.card if dialog.exec() == QDialog.DialogCode.Accepted else None
