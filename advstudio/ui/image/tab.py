"""Image tab: load an image (drop, Ctrl+O, sample gallery), pick a classifier, see top-5.

The gallery shows the shipped samples, or (once PyTorch has loaded) images of any data set of
the one data-set picker, at their own size and colour.

Images are decoded on a worker (a large photo takes seconds), and the one shown stays until the
new one is ready; a newer request supersedes an older one still decoding.

Run alone: ``python -m advstudio.ui.image.tab``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ImageLoadError, explain
from advstudio.core.images import SUPPORTED_SUFFIXES, LoadedImage, load_image
from advstudio.core.jobs import Job, Progress
from advstudio.core.resources import sample_images
from advstudio.ui.model_controller import ModelController
from advstudio.ui.state import AppState
from advstudio.ui.widgets.error_box import show_error
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.topk_bars import TopKBars
from advstudio.workers import JobManager, JobWorker

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ");;All files (*)"
MODEL_FILTER = "Models (*.pt2 *.onnx *.safetensors *.pt *.pth *.ts *.torchscript);;All files (*)"
USER_MODEL = "__user__"
GALLERY_SAMPLES = 24  # images of a chosen data set shown in the gallery


def _samples_job(dataset: str, split: str) -> Job:
    """A seeded subset of ``dataset`` for the gallery, read on a worker."""
    from advstudio.core.data.sets import load_dataset

    yield Progress(0, 1, f"reading samples of {dataset}")
    return load_dataset(dataset, split, limit=GALLERY_SAMPLES, seed=0)


def _load_job(path: Path) -> Job:
    """Decode an image on a worker (the UI thread would freeze for seconds on a large photo)."""
    yield Progress(0, 1, f"opening {path.name}")
    return load_image(path)


def _predict_job(model, image: LoadedImage) -> Job:
    """One forward pass on a worker: the image as the model sees it, and the top-5."""
    import torch

    from advstudio.core.images import from_tensor, to_tensor

    yield Progress(0, 1, "predicting")
    x = to_tensor(image).to(model.device)
    with torch.no_grad():
        seen = from_tensor(model.prepare(x))
    source = image.path.name if image.path else "the image"
    prediction = model.predict(x, k=5, source=source)[0]
    return seen, prediction


class ImageTab(QWidget):
    image_error = Signal(str)  # the message shown in the banner
    image_loaded = Signal(str)  # a new image is shown: its one-line description
    predicted = Signal(object)  # Prediction

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models: ModelController,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.models = state, jobs, models
        self.settings = settings or QSettings()
        self._request = 0
        self._load_request = 0
        self.last_image_error = ""  # what image_error last said, until an image loads
        self.last_prediction = None
        self._build()
        state.image_changed.connect(self._on_image)
        state.model_changed.connect(self._on_model)
        state.torch_ready.connect(self._on_torch_ready)
        models.loading.connect(self._on_model_loading)
        models.failed.connect(self._on_model_failed)
        if state.torch_loaded:
            self._on_torch_ready()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = QLabel(wordWrap=True)
        self.banner.setStyleSheet(
            "QLabel { background: #5c1f1f; color: white; padding: 6px; border-radius: 4px; }"
        )
        self.banner.hide()

        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(56, 56))
        self.gallery.setGridSize(QSize(66, 80))
        self.gallery.setUniformItemSizes(True)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setFixedWidth(220)
        self.gallery.setToolTip("Sample images shipped with advstudio: click one to load it")
        for path in sample_images():
            thumb = QPixmap(str(path)).scaled(
                56,
                56,
                Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                Qt.TransformationMode.SmoothTransformation,
            )
            side = min(thumb.width(), thumb.height())
            thumb = thumb.copy(
                (thumb.width() - side) // 2, (thumb.height() - side) // 2, side, side
            )
            item = QListWidgetItem(QIcon(thumb), path.stem.replace("_", " "))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.gallery.addItem(item)
        self._shipped = [self.gallery.item(i) for i in range(self.gallery.count())]
        self.samples_from = None  # the data-set picker, built once PyTorch has loaded
        self._samples = None  # the chosen set's images shown in the gallery
        self.gallery.itemClicked.connect(self._on_gallery_item)
        self.open_button = QPushButton("Open image…")
        self.open_button.setToolTip("Open an image file (Ctrl+O), or drop one on the window")
        self.open_button.clicked.connect(self.open_dialog)
        left = self.left = QVBoxLayout()
        left.addWidget(QLabel("<b>Samples</b>"))
        left.addWidget(self.gallery, 1)
        left.addWidget(self.open_button)

        self.original = ImageView(
            "No image", "Drop an image here, press Ctrl+O,\nor pick a sample on the left"
        )
        self.seen = ImageView("As the model sees it", "")
        views = QHBoxLayout()
        views.addWidget(self.original, 1)
        views.addWidget(self.seen, 1)
        middle = QVBoxLayout()
        middle.addWidget(self.banner)
        middle.addLayout(views, 1)

        self.model_combo = QComboBox()
        self.model_combo.setEnabled(False)
        self.model_combo.setToolTip("The classifier to run on the image")
        self.model_combo.activated.connect(self._on_combo)
        self.model_info = QLabel("Loading PyTorch…", wordWrap=True)
        self.model_info.setStyleSheet("color: palette(mid);")
        self.load_model_button = QPushButton("Load model file…")
        self.load_model_button.setToolTip(
            "A TorchScript file, or a state_dict of a built-in "
            "architecture (loaded safely: no pickled code)"
        )
        self.load_model_button.setEnabled(False)
        self.load_model_button.clicked.connect(self.open_model_dialog)
        model_box = QGroupBox("Classifier")
        mb = QVBoxLayout(model_box)
        mb.addWidget(self.model_combo)
        mb.addWidget(self.model_info)
        mb.addWidget(self.load_model_button)

        self.bars = TopKBars(5)
        self.verdict = QLabel("", wordWrap=True)
        self.verdict.setStyleSheet("font-size: 15px; font-weight: bold;")
        pred_box = QGroupBox("Top-5 predictions")
        pb = QVBoxLayout(pred_box)
        pb.addWidget(self.verdict)
        pb.addWidget(self.bars)
        right = QVBoxLayout()
        right.addWidget(model_box)
        right.addWidget(pred_box)
        right.addStretch(1)
        right_w = QWidget()
        right_w.setLayout(right)
        right_w.setFixedWidth(340)

        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(middle, 1)
        layout.addWidget(right_w)

    # -- images -------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = self.settings.value("last_folder", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.load_path(path)

    def load_path(self, path: str | Path, remember: bool = True) -> None:
        """Start loading an image on a worker; on failure the banner says why and the previous
        image is kept. The result comes as ``state.image_changed`` (and ``image_loaded``) or
        ``image_error``. ``remember``: make its folder the file dialog's next start folder."""
        path = Path(path)
        self._load_request += 1
        request = self._load_request

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda image: self._on_loaded(request, image, remember))
            w.errored.connect(lambda exc: self._on_load_failed(request, exc))

        self.jobs.start(
            lambda: _load_job(path), f"Opening {path.name}", show_in_status=False, connect=connect
        )

    def _on_loaded(self, request: int, image: LoadedImage, remember: bool) -> None:
        if request != self._load_request:
            return  # a newer image was asked for meanwhile
        self.banner.hide()
        if remember and image.path is not None:
            self.settings.setValue("last_folder", str(image.path.parent))
        self.state.set_image(image)
        name = image.path.name if image.path else "image"
        self.image_loaded.emit(f"Opened {name}: {image.describe()}")
        self.last_image_error = ""  # after the signal: listeners compare against it

    def _on_load_failed(self, request: int, exc: BaseException) -> None:
        if request == self._load_request:
            self.show_banner(str(exc) if isinstance(exc, ImageLoadError) else explain(exc))

    def show_banner(self, message: str) -> None:
        text = message.rstrip(". ")  # the sentence goes on: no doubled full stop
        self.banner.setText(f"Could not open the image: {text}. The previous image is kept.")
        self.banner.show()
        self.last_image_error = message
        self.image_error.emit(message)

    # -- gallery ------------------------------------------------------------------------------
    def _add_samples_picker(self) -> None:
        from advstudio.ui.widgets.dataset_picker import DatasetPicker

        self.samples_from = DatasetPicker(self.settings)
        self.samples_from.combo.setItemText(0, "Shipped samples")
        self.samples_from.setToolTip(
            "What the gallery shows: the shipped samples, or images of a data set"
        )
        self.samples_from.setFixedWidth(220)
        self.left.insertWidget(1, self.samples_from)
        self.samples_from.changed.connect(self.show_samples)

    def show_samples(self, dataset: str) -> JobWorker | None:
        """Fill the gallery with the shipped samples ("digits") or images of ``dataset``."""
        if dataset == "digits":
            self._samples = None
            while self.gallery.count():
                self.gallery.takeItem(0)
            for item in self._shipped:
                self.gallery.addItem(item)
            return None
        split = self.samples_from.split() if self.samples_from is not None else "test"
        return self.jobs.start(
            lambda: _samples_job(dataset, split),
            "Reading samples",
            show_in_status=False,
            connect=lambda w: (
                w.returned.connect(self._fill_gallery),
                w.errored.connect(lambda exc: self.show_banner(explain(exc))),
            ),
        )

    def _fill_gallery(self, data) -> None:
        from advstudio.core.images import from_tensor
        from advstudio.ui.widgets.image_view import array_to_qimage

        self._samples = data
        while self.gallery.count():
            self.gallery.takeItem(0)
        for i, (x, y) in enumerate(zip(data.x, data.y.tolist())):
            thumb = QPixmap.fromImage(array_to_qimage(from_tensor(x))).scaled(
                56, 56, Qt.AspectRatioMode.KeepAspectRatio
            )
            item = QListWidgetItem(QIcon(thumb), data.class_names[y])
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.gallery.addItem(item)

    def _on_gallery_item(self, item: QListWidgetItem) -> None:
        from advstudio.core.images import from_tensor

        value = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(value, str):
            self.load_path(value, remember=False)
            return
        pixels = from_tensor(self._samples.x[value])
        mode = "L" if pixels.shape[2] == 1 else "RGB"
        image = LoadedImage(pixels, None, mode, (pixels.shape[1], pixels.shape[0]))
        self._load_request += 1  # supersedes a file still decoding
        self.banner.hide()
        self.state.set_image(image)
        self.image_loaded.emit(
            f"Sample {value + 1} of {self._samples.source} ({item.text()}): {image.describe()}"
        )

    def _on_image(self, image: LoadedImage) -> None:
        name = image.path.name if image.path else "image"
        self.original.set_pixels(image.pixels, f"{name}: {image.describe()}")
        self._predict()

    # -- models -------------------------------------------------------------------------------
    def _on_torch_ready(self) -> None:
        from advstudio.core.models.registry import list_models

        self.model_combo.clear()
        for spec in list_models():
            self.model_combo.addItem(spec.name, spec.key)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole
            )
        self.model_combo.insertSeparator(self.model_combo.count())
        self.model_combo.addItem("Your model file…", USER_MODEL)
        self.model_combo.setEnabled(True)
        self.load_model_button.setEnabled(True)
        if self.samples_from is None:
            self._add_samples_picker()
        key = str(self.settings.value("model", "digits-cnn"))
        if self.model_combo.findData(key) < 0:
            key = "digits-cnn"
        self.select_model(key)

    def select_model(self, key: str) -> None:
        """Pick a model by registry key, as if chosen in the combo."""
        index = self.model_combo.findData(key)
        if index < 0:
            name = Path(key.split(":", 1)[-1]).name
            self.model_combo.insertItem(self.model_combo.count() - 2, name, key)
            index = self.model_combo.findData(key)
        self.model_combo.setCurrentIndex(index)
        self.models.request(key)

    def _on_combo(self, index: int) -> None:
        key = self.model_combo.itemData(index)
        if key == USER_MODEL:
            self.open_model_dialog()
        elif key and key != self.state.model_key:
            self.models.request(key)

    def open_model_dialog(self) -> None:
        start = self.settings.value("last_model_folder", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", start, MODEL_FILTER)
        if path:
            self.settings.setValue("last_model_folder", str(Path(path).parent))
            self.select_model(f"file:{path}")
        else:
            self._restore_combo()

    def _restore_combo(self) -> None:
        index = self.model_combo.findData(self.state.model_key)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    def _on_model_loading(self, key: str) -> None:
        self.model_info.setText(f"Loading {key}…")

    def _on_model_failed(self, key: str, exc) -> None:
        self._restore_combo()
        if self.state.model is not None:
            self.model_info.setText(self._describe_model())
        if exc is not None:
            show_error(self, "Could not load the model", exc)
            self.model_info.setText(f"{key} could not be loaded. {self._describe_model()}")

    def _on_model(self, model) -> None:
        self.settings.setValue("model", self.state.model_key)
        self._restore_combo()
        self.model_info.setText(self._describe_model())
        self._predict()

    def _describe_model(self) -> str:
        model = self.state.model
        if model is None:
            return ""
        c, h, w = model.input_shape
        params = sum(p.numel() for p in model.parameters()) / 1e6
        return (
            f"{model.name}: {c}×{h}×{w} input, {model.num_classes} classes, "
            f"{params:.2f} M parameters, on {self.state.device}"
        )

    # -- prediction ---------------------------------------------------------------------------
    def _predict(self) -> None:
        model, image = self.state.model, self.state.image
        if model is None or image is None:
            return
        self._request += 1
        request = self._request

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda r: self._on_prediction(request, r))
            w.errored.connect(lambda exc: self._on_prediction_failed(request, exc))

        self.verdict.setText("…")
        self.jobs.start(
            lambda: _predict_job(model, image), "Predicting", show_in_status=False, connect=connect
        )

    def _on_prediction(self, request: int, result) -> None:
        if request != self._request:
            return  # a newer image or model superseded this one
        seen, prediction = result
        c, h, w = self.state.model.input_shape
        self.seen.set_pixels(seen, f"As {self.state.model.name} sees it ({c}×{h}×{w})")
        self.bars.set_prediction(prediction.names, prediction.probs)
        self.verdict.setText(f"{prediction.names[0]}  ({prediction.probs[0] * 100:.1f} %)")
        self.last_prediction = prediction
        self.predicted.emit(prediction)

    def _on_prediction_failed(self, request: int, exc: BaseException) -> None:
        if request == self._request:
            self.bars.clear()  # the bars showed another image or model: never leave them half
            self.verdict.setText("Prediction failed")
            show_error(self, "Prediction failed", exc)


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(ImageTab)
