"""The one data-set choice of every lab as a widget: a combo of the sets (bundled digits, an
image folder, an ImageNet-style folder, the torchvision sets), a button to choose the folder
(the last one is remembered in QSettings), and a line saying what the set is.

``dataset()`` is the string the job configs take (``advstudio.core.data.sets``); ``split()``
the split an evaluation should use (a user's folder is evaluated whole unless it has
``train/`` and ``test/``); ``fit()`` the resize policy, when the picker shows that choice.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.data.spec import TORCHVISION
from advstudio.core.errors import ConfigError

LABELS = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
}
FOLDER_KINDS = ("folder", "imagenet-folder")
FITS = (
    ("as they are", "none"),
    ("resize to the model", "resize"),
    ("centre-crop to the model", "center-crop"),
)
SETTINGS_KEY = "data/last_folder"


class DatasetPicker(QWidget):
    """``changed(dataset)`` whenever the choice changes. ``imagenet``: offer ImageNet-style
    folders (the zoo models); ``fit``: show the resize policy combo."""

    changed = Signal(str)

    def __init__(
        self,
        settings: QSettings,
        parent: QWidget | None = None,
        *,
        imagenet: bool = True,
        fit: bool = False,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.folders = {kind: "" for kind in FOLDER_KINDS}
        self.combo = QComboBox()
        self.combo.addItem("Bundled digits", "digits")
        self.combo.addItem("Image folder…", "folder")
        if imagenet:
            self.combo.addItem("ImageNet-style folder…", "imagenet-folder")
        for key in TORCHVISION:
            # "(torchvision, downloaded once)" was cut at 1280×720: it goes to the tooltip
            self.combo.addItem(f"{LABELS[key]} (download)", f"torchvision:{key}")
            self.combo.setItemData(
                self.combo.count() - 1,
                f"{LABELS[key]} from torchvision, downloaded once into the data folder",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.combo.setToolTip(
            "Image folder: one sub-folder per class, or a flat folder with a "
            "labels.csv (file,label); images at their own size and colour"
        )
        self.combo.activated.connect(self._on_activated)
        self.choose = QPushButton("Folder…")
        self.choose.clicked.connect(self.ask_folder)
        self.fit_combo = QComboBox()
        for text, value in FITS:
            self.fit_combo.addItem(text, value)
        self.fit_combo.setToolTip(
            "When the images do not have the model's input shape: refuse "
            "(as they are), resize them, or centre-crop then resize"
        )
        self.fit_combo.setVisible(fit)
        self.info = QLabel("", wordWrap=True)
        self.note = QLabel("", wordWrap=True)  # what the last job did with the images
        self.note.setVisible(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.choose)
        row.addWidget(self.fit_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.info)
        layout.addWidget(self.note)
        self._refresh()

    # -- the choice ---------------------------------------------------------------------------
    def kind(self) -> str:
        return str(self.combo.currentData())

    def dataset(self) -> str:
        """The config string; a folder kind without a folder yet is a :class:`ConfigError`."""
        kind = self.kind()
        if kind in FOLDER_KINDS:
            if not self.folders[kind]:
                raise ConfigError("choose the data folder first (the Folder… button)")
            return f"{kind}:{self.folders[kind]}"
        return kind

    def split(self) -> str:
        """``"test"``, or ``"all"`` for a folder without ``train/`` and ``test/``."""
        if self.kind() in FOLDER_KINDS:
            root = Path(self.folders[self.kind()])
            return "test" if (root / "train").is_dir() and (root / "test").is_dir() else "all"
        return "test"

    def fit(self) -> str:
        return str(self.fit_combo.currentData())

    def set_dataset(self, dataset: str) -> None:
        """Show ``dataset`` (a config string, e.g. from a rerun)."""
        kind, _, arg = dataset.partition(":")
        if kind in FOLDER_KINDS:
            self.use_folder(arg, kind)
            return
        index = self.combo.findData(dataset)
        if index < 0:
            raise ConfigError(f"unknown data set {dataset!r}")
        self.combo.setCurrentIndex(index)
        self._refresh()

    def use_folder(self, folder: str, kind: str = "folder") -> None:
        """Choose ``folder`` as the set of ``kind`` and remember it for the next dialog."""
        self.folders[kind] = str(folder)
        self.settings.setValue(SETTINGS_KEY, str(folder))
        self.combo.setCurrentIndex(self.combo.findData(kind))
        self._refresh()

    def ask_folder(self) -> None:
        kind = self.kind() if self.kind() in FOLDER_KINDS else "folder"
        start = str(self.settings.value(SETTINGS_KEY, str(Path.home())))
        folder = QFileDialog.getExistingDirectory(
            self, "Data folder (one sub-folder per class)", start
        )
        if folder:
            self.use_folder(folder, kind)

    def job_log(self, text: str) -> None:
        """Connect a job's ``log``: the lines on its data (the set as read, the files skipped,
        what was done to fit the model: ``"32×32 RGB, 10 classes, 20 images; fitted to the
        model: resized 40×40 → 32×32"``) are shown under the choice; others are ignored."""
        if text.startswith("data: "):
            self._notes = [text.removeprefix("data: ")]
        elif text.startswith("fitted to the model: ") or "unreadable file(s) skipped" in text:
            self._notes = [*getattr(self, "_notes", []), text]
        else:
            return
        self.note.setText("Last run: " + "; ".join(self._notes))
        self.note.setVisible(True)

    # -- internals ----------------------------------------------------------------------------
    def _on_activated(self) -> None:
        if self.kind() in FOLDER_KINDS and not self.folders[self.kind()]:
            self.ask_folder()
        self._refresh()

    def _refresh(self) -> None:
        from advstudio.core.data.sets import summary

        kind = self.kind()
        self.choose.setVisible(kind in FOLDER_KINDS)
        try:
            dataset = self.dataset()
            text = (f"{Path(self.folders[kind]).name}: " if kind in FOLDER_KINDS else "") + summary(
                dataset
            )
        except ConfigError as exc:
            dataset, text = "", str(exc)
        self.info.setText(text)
        self._notes = []
        self.note.setText("")
        self.note.setVisible(False)
        self.info.setToolTip(self.folders.get(kind, ""))
        if dataset:
            self.changed.emit(dataset)
