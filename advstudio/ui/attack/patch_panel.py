"""Adversarial patch (Brown et al. 2017) for the current digit model: trained with EoT over
position, scale and rotation on 200 bundled test digits towards a target class, at a chosen
share of the image; its success on 200 held-out digits; and the patch on the current image,
where the user drags it and the prediction follows as they drag. Exports as PNG."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.ui.widgets.image_view import array_to_qimage
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker

TRAIN, TEST = 200, 200  # bundled test digits to train on, and to judge on
ZOOM = 8  # screen pixels per image pixel


class _Patch(QGraphicsPixmapItem):
    """The draggable patch; calls ``moved()`` on every position change."""

    def __init__(self, pixmap: QPixmap, moved) -> None:
        super().__init__(pixmap)
        self.moved = moved
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def itemChange(self, change, value):  # noqa: N802 - Qt override
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.moved()
        return super().itemChange(change, value)


class PatchPanel(QWidget):
    """``lab`` is the Attack tab. ``trained(PatchResult)``; ``predicted(str)`` after each drag."""

    trained = Signal(object)
    predicted = Signal(str)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.result, self.item = lab, None, None
        self.area = QSpinBox(minimum=1, maximum=50, value=10, suffix=" %")
        self.area.setToolTip("Patch size as a share of the image area (1-50 %)")
        self.target = QSpinBox(minimum=0, maximum=9, value=3)
        self.target.setToolTip("The class the patch should make the model predict")
        self.steps = QSpinBox(minimum=1, maximum=5000, value=300)
        self.steps.setToolTip("Training steps (batches of 32 digits, one random placement each)")
        self.run_button = QPushButton("Train patch")
        self.run_button.clicked.connect(lambda: self.run())
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        self.scene = QGraphicsScene(self)
        self.view = QGraphicsView(self.scene)
        self.view.setToolTip("Drag the patch: the prediction below follows")
        self.prediction = QLabel("—")
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)
        row = QHBoxLayout()
        for text, widget in (("area", self.area), ("target", self.target), ("steps", self.steps)):
            row.addWidget(QLabel(text))
            row.addWidget(widget)
        row.addWidget(self.run_button)
        row.addWidget(self.export_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.prediction)
        layout.addWidget(self.status)
        lab.state.image_changed.connect(lambda *_: self._stage())

    def run(self) -> JobWorker | None:
        model = self.lab.state.model
        if model is None or model.input_shape[0] != 1 or model.num_classes != 10:
            self.status.setText("The patch is trained on the bundled digits: pick a digit model.")
            return None
        from advstudio.core.attacks.patch import train_patch_job

        area, target, steps = self.area.value() / 100, self.target.value(), self.steps.value()

        def job():
            from advstudio.core.attacks.sweep import sweep_images

            x, _ = sweep_images(TRAIN + TEST, 2)
            x = x.to(model.device)
            return (
                yield from train_patch_job(
                    model, x[:TRAIN], x[TRAIN:], target, area=area, steps=steps
                )
            )

        self.status.setText(f"training a {area:.0%} patch towards {target}…")
        return self.job.start(
            job,
            "Adversarial patch",
            "Training the patch failed",
            connect=lambda w: w.returned.connect(self._show),
        )

    def _show(self, result) -> None:
        self.result = result
        self.export_button.setEnabled(True)
        self.status.setText(
            f"{result.area:.0%} patch towards {result.target}: "
            f"{result.success:.1%} of {TEST} held-out digits sent there."
        )
        self._stage()
        self.trained.emit(result)

    def _stage(self) -> None:
        """The current image with the patch at its centre, ready to drag."""
        from advstudio.core.images import from_tensor

        self.scene.clear()
        self.item = None
        image = self.lab.state.image
        if image is None:
            return
        background = QPixmap.fromImage(array_to_qimage(image.pixels))
        self.scene.addPixmap(background.scaled(background.size() * ZOOM))
        if self.result is None:
            return
        patch = QPixmap.fromImage(array_to_qimage(from_tensor(self.result.patch)))
        self.item = _Patch(patch.scaled(patch.size() * ZOOM), self.update_prediction)
        h, w = image.pixels.shape[:2]
        side = self.result.patch.shape[-1]
        self.scene.addItem(self.item)
        self.item.setPos((w - side) / 2 * ZOOM, (h - side) / 2 * ZOOM)

    def move_patch(self, top: float, left: float) -> None:
        """Put the patch's top-left corner at image pixel (``top``, ``left``) (scripts, tests)."""
        if self.item is not None:
            self.item.setPos(left * ZOOM, top * ZOOM)

    def update_prediction(self) -> None:
        model, image = self.lab.state.model, self.lab.state.image
        if self.item is None or model is None or image is None:
            return
        from advstudio.core.attacks.patch import fixed_placement, paste
        from advstudio.core.images import to_tensor

        side = self.result.patch.shape[-1]
        pos = self.item.pos()
        x = to_tensor(image).to(model.device)
        where = fixed_placement(1, pos.y() / ZOOM + side / 2, pos.x() / ZOOM + side / 2)
        patched, _ = paste(x, self.result.patch.to(model.device), where)
        top = model.predict(patched, k=1)[0]
        text = f"With the patch: {model.class_names[top.indices[0]]} ({top.probs[0] * 100:.1f} %)"
        self.prediction.setText(text)
        self.predicted.emit(text)

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export patch", str(Path.home() / "patch.png"), "PNG (*.png)"
        )
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> Path:
        from advstudio.core.attacks.patch import save_patch

        return save_patch(self.result.patch, path)
