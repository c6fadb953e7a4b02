"""Adversarial patch (Brown et al. 2017) for the current model, whatever its input: trained with
EoT over position, scale and rotation on images of the data set chosen with the data-set
picker (fitted to the model's channels and size: colour stays colour), towards a target class
named by the model; its success on held-out images of that set.

The patch on the current image (as the model sees it: its channels and size): the view shows
exactly the composed image the model is given, and a dashed outline to drag. The mouse wheel
over the view scales the patch, Shift + wheel turns it; the spin boxes do the same; keys (with
the view focused): arrows move by a pixel (Shift: five), + / - scale, [ / ] turn by 5°, 0 puts
it back. Each change composes the image and runs one forward pass (coalesced: at most one per
``PREDICT_MS`` or twice the last forward's time, so a slow model does not stall the drag).

Its success against patch size: one job over the sizes asked for, either this patch pasted at
each size or one patch trained per size, plotted point by point, with progress and cancel.
Exports as PNG."""

from __future__ import annotations

import math
import time
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.attack.dataset_job_panel import DatasetJobPanel
from advstudio.ui.widgets.image_view import array_to_qimage
from advstudio.workers import JobManager, JobWorker

TRAIN, TEST = 200, 200  # images of the data set to train on, and to judge on
SEED = 0  # the data subset's and the training's
PREDICT_MS = 15  # the least time between two live forwards
SCALE_STEP, ANGLE_STEP = 5, 5.0  # % and degrees per wheel notch / key press
DEFAULT_SIZES = "5, 10, 15, 20, 30"


def parse_sizes(text: str) -> list[float]:
    """``"5, 10, 20"`` (percent of the image area) -> ``[0.05, 0.1, 0.2]``; a bad entry is a
    :class:`ConfigError` naming it."""
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip().rstrip("%").strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"patch size {part!r} is not a number (percent of the image)"
            ) from None
        if not 0 < value <= 50:
            raise ConfigError(f"patch sizes are percent of the image in (0, 50], not {value:g}")
        out.append(value / 100)
    if not out:
        raise ConfigError("give at least one patch size (percent of the image, e.g. 5, 10, 20)")
    return out


def compact_plot(x_label: str, y_label: str):
    """A white pyqtgraph plot for a curve of a few points, y in [0, 1], whose size hint is
    small (pyqtgraph's is 640 × 480, which made the Attack tab's lower panels scroll at
    1280 × 720); it still grows with the panel."""
    import pyqtgraph as pg
    from PySide6.QtCore import QSize

    class CompactPlot(pg.PlotWidget):
        def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
            return QSize(320, 130)

    plot = CompactPlot(background="w")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.setYRange(0, 1.02)
    plot.showGrid(x=True, y=True, alpha=0.3)
    plot.setMinimumSize(240, 140)
    plot.getAxis("bottom").enableAutoSIPrefix(False)
    plot.setMouseEnabled(x=False, y=False)
    return plot


class _Outline(QGraphicsRectItem):
    """The patch's handle: a dashed square centred on its origin (the patch centre), dragged by
    the mouse; every move is clamped to the image and reported to ``moved(row, col)``."""

    def __init__(self, side: int, bounds: QRectF, moved) -> None:
        super().__init__(-side / 2, -side / 2, side, side)
        self.bounds, self.moved = bounds, moved
        pen = QPen(QColor(255, 200, 0), 0, Qt.PenStyle.DashLine)  # cosmetic: 1 screen pixel
        self.setPen(pen)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setToolTip(
            "Drag the patch; wheel: scale, Shift+wheel: turn; "
            "keys: arrows move, + / − scale, [ / ] turn, 0 resets"
        )

    def itemChange(self, change, value):  # noqa: N802 - Qt override
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            b = self.bounds
            return QPointF(
                min(max(value.x(), b.left()), b.right()), min(max(value.y(), b.top()), b.bottom())
            )
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.moved(self.pos().y(), self.pos().x())
        return super().itemChange(change, value)


class _PatchView(QGraphicsView):
    """The scene (1 unit = 1 image pixel) fitted to the view; wheel and keys go to the panel."""

    def __init__(self, scene: QGraphicsScene, panel: PatchPanel) -> None:
        super().__init__(scene)
        self.panel = panel
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumSize(150, 150)
        self.setBackgroundBrush(QColor(40, 40, 40))

    def sizeHint(self):  # noqa: N802 - Qt override
        from PySide6.QtCore import QSize

        return QSize(200, 140)

    def fit(self) -> None:
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.fit()

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        notches = event.angleDelta().y() / 120 or event.angleDelta().x() / 120
        if not notches or self.panel.outline is None:
            return super().wheelEvent(event)
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.panel.turn(notches * ANGLE_STEP)
        else:
            self.panel.grow(notches * SCALE_STEP)
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self.panel.key(event.key(), event.modifiers()):
            super().keyPressEvent(event)


def run_patch(config, model, trained):
    """The core's ``patch`` job (imported when first run: the tab is built before torch work
    starts)."""
    from advstudio.core.attacks.dataset_attacks import run_patch as job

    return job(config, model, trained)


class PatchPanel(DatasetJobPanel):
    """``lab`` is the Attack tab. ``trained(PatchResult)``; ``predicted(str)`` after each change
    of the patch's place (``last_prediction`` the :class:`Prediction`);
    ``size_curve(SizeCurve)`` when a curve against size completes."""

    KIND = "patch"
    trained = Signal(object)
    predicted = Signal(str)
    size_curve = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(lab, jobs, settings, parent)
        self.result, self.outline = None, None
        self.settings = settings  # the export dialog's last folder
        self.curve = None
        self._trained_config = None  # the PatchConfig the patch was trained with
        self.last_prediction = None
        self.row = self.col = 0.0
        self._syncing = False
        self._base = None  # the current image as the model sees it, (1, C, H, W)

        self.data.setToolTip("The images the patch is trained and judged on")
        self.area = QSpinBox(minimum=1, maximum=50, value=10, suffix=" %")
        self.area.setToolTip("Patch size as a share of the image area (1-50 %)")
        self.target = QComboBox()
        self.target.setToolTip("The class the patch should make the model predict")
        self.target.setMinimumContentsLength(10)
        self.steps = QSpinBox(minimum=1, maximum=5000, value=300)
        self.steps.setToolTip("Training steps (batches of 32 images, one random placement each)")
        self.run_button = QPushButton("Train patch")
        self.run_button.clicked.connect(lambda: self.run())
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)

        self.scale = QSpinBox(minimum=10, maximum=400, value=100, singleStep=SCALE_STEP)
        self.scale.setSuffix(" %")
        self.scale.setToolTip("Patch scale (wheel over the image; + / − keys)")
        self.angle = QDoubleSpinBox(minimum=-180, maximum=180, value=0, singleStep=ANGLE_STEP)
        self.angle.setSuffix("°")
        self.angle.setDecimals(1)
        self.angle.setWrapping(True)
        self.angle.setToolTip("Patch rotation, clockwise (Shift+wheel; [ / ] keys)")
        self.reset_button = QPushButton("Centre")
        self.reset_button.setToolTip("Back to the centre, 100 %, 0° (key 0)")
        self.reset_button.clicked.connect(self.reset_geometry)
        self.scale.valueChanged.connect(lambda v: self.set_geometry(scale=v / 100))
        self.angle.valueChanged.connect(lambda v: self.set_geometry(angle=v))
        self.prediction = QLabel("—", wordWrap=True)
        self.prediction.setStyleSheet("font-weight: bold;")
        self.where = QLabel("")
        self.where.setStyleSheet("color: #555;")
        self.where.setToolTip(
            "Drag the patch; wheel over the image: scale, Shift+wheel: turn; keys (image "
            "focused): arrows move (Shift: 5 px), + / − scale, [ / ] turn, 0 resets"
        )

        self.scene = QGraphicsScene(self)
        self.view = _PatchView(self.scene, self)
        self.view.setToolTip("The image as the model sees it, with the patch: drag, wheel, keys")
        self._background = QGraphicsPixmapItem()
        self._background.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self.scene.addItem(self._background)

        self.sizes = QLineEdit(DEFAULT_SIZES)
        self.sizes.setToolTip("Patch sizes, percent of the image area, separated by commas")
        self.size_mode = QComboBox()
        self.size_mode.addItem("this patch, resized", "rescale")
        self.size_mode.addItem("train one per size", "retrain")
        self.size_mode.setToolTip(
            "Resized: the trained patch pasted at each size (fast); train one per size: "
            "a new EoT training at each size (slower, each point its own patch)"
        )
        self.curve_button = QPushButton("Success vs size")
        self.curve_button.setToolTip("Success on the held-out images at each size (one job)")
        self.curve_button.clicked.connect(lambda: self.run_size_curve())
        import pyqtgraph as pg

        self.plot = compact_plot("patch size (% of the image area)", "success (held-out)")
        self.plot.setXRange(0, 32)
        self.points = self.plot.plot(
            [], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=7
        )

        self.timer = QTimer(self, singleShot=True, interval=PREDICT_MS)
        self.timer.timeout.connect(self.update_prediction)

        # three columns (the panel sits in the lower part of the tab, ~250 px at 1280×720):
        # the controls, the image with the patch, and the curve against size
        form = QGridLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(4)
        form.addWidget(QLabel("area"), 0, 0)
        form.addWidget(self.area, 0, 1)
        form.addWidget(QLabel("target"), 0, 2)
        form.addWidget(self.target, 0, 3, 1, 2)
        form.addWidget(QLabel("steps"), 1, 0)
        form.addWidget(self.steps, 1, 1)
        form.addWidget(self.run_button, 1, 2, 1, 2)
        form.addWidget(self.export_button, 1, 4)
        form.addWidget(QLabel("data"), 2, 0)
        form.addWidget(self.data, 2, 1, 1, 4)
        form.addWidget(QLabel("scale"), 3, 0)
        form.addWidget(self.scale, 3, 1)
        form.addWidget(QLabel("angle"), 3, 2)
        form.addWidget(self.angle, 3, 3)
        form.addWidget(self.reset_button, 3, 4)
        form.addWidget(self.prediction, 4, 0, 1, 5)
        form.addWidget(self.where, 5, 0, 1, 5)
        form.setRowStretch(6, 1)
        form.setColumnStretch(3, 1)
        form_w = QWidget()
        form_w.setLayout(form)
        form_w.setFixedWidth(360)
        curve_row = QHBoxLayout()
        curve_row.addWidget(QLabel("sizes %"))
        curve_row.addWidget(self.sizes, 1)
        curve_row.addWidget(self.size_mode)
        curve_row.addWidget(self.curve_button)
        right = QVBoxLayout()
        right.addLayout(curve_row)
        right.addWidget(self.plot, 1)
        middle = QHBoxLayout()
        middle.addWidget(form_w)
        middle.addWidget(self.view, 2)
        middle.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(middle, 1)
        layout.addLayout(self.status_row())
        lab.state.image_changed.connect(lambda *_: self._stage())
        lab.state.model_changed.connect(self._on_model)
        self._on_model(lab.state.model)

    # -- the model and the data ---------------------------------------------------------------
    def _on_model(self, model) -> None:
        """The target list names the model's classes; a patch of another model stays while it
        fits the image (a transfer test)."""
        previous = self.target.currentData()
        self.target.clear()
        names = list(getattr(model, "class_names", []) or [])
        for k, name in enumerate(names):
            self.target.addItem(f"{k}: {name}" if name != str(k) else name, k)
        if names:
            keep = isinstance(previous, int) and previous < len(names)
            self.target.setCurrentIndex(previous if keep else min(3, len(names) - 1))
        self._stage()

    def config(self, curve: str = "none", areas: tuple[float, ...] = ()):
        """The ``patch`` job config of the controls (a ConfigError names what is wrong):
        what Train patch runs (``curve="none"``), and File ▸ Export job as config writes."""
        from advstudio.core.attacks.dataset_attacks import PatchConfig

        state = self.lab.state
        if state.model is None or self.target.currentData() is None:
            raise ConfigError("pick a model first")
        return PatchConfig(
            model=state.model_key,
            card=state.model_card,
            target=self.target.currentData(),
            area=self.area.value() / 100,
            steps=self.steps.value(),
            curve=curve,
            areas=tuple(areas) or PatchConfig.areas,
            n_train=TRAIN,
            n_test=TEST,
            dataset=self.data.dataset(),
            split=self.data.split(),
            fit=self.data.fit(),
            seed=SEED,
            device=state.device,
        )

    def _on_metrics(self, m) -> None:
        if "area" in m.values and "success" in m.values:
            self._curve_x.append(100 * m.values["area"])
            self._curve_y.append(m.values["success"])
            self.points.setData(self._curve_x, self._curve_y)

    # -- training -----------------------------------------------------------------------------
    def run(self) -> JobWorker | None:
        if self.lab.state.model is None or self.target.currentData() is None:
            self.status.setText("Load a model first.")
            return None
        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None

        def done(run) -> None:
            self._trained_config = config
            self._show(run.patch_result())

        self.status.setText(
            f"training a {config.area:.0%} patch towards {self._target_name(config.target)}…"
        )
        return self._start(
            run_patch, config, None, "Adversarial patch", "Training the patch failed", done
        )

    def _show(self, result) -> None:
        self.result = result
        self.export_button.setEnabled(True)
        self.status.setText(
            f"{result.area:.0%} patch towards {self._target_name(result.target)}: "
            f"{result.success:.1%} of {result.n_test} held-out {self._noun()} sent there."
        )
        self._stage()
        self.trained.emit(result)

    # -- success against size -----------------------------------------------------------------
    def run_size_curve(self) -> JobWorker | None:
        """One job over the sizes in the field: this patch resized, or one trained per size."""
        model = self.lab.state.model
        mode = self.size_mode.currentData()
        if model is None:
            self.status.setText("Load a model first.")
            return None
        if mode == "rescale" and self.result is None:
            self.status.setText("Train a patch first (or choose 'train one per size').")
            return None
        try:
            areas = tuple(parse_sizes(self.sizes.text()))
            if mode == "rescale":  # this patch: the settings it was trained with
                config = self._rescale_config(
                    self._trained_config,
                    {"target": self.result.target, "area": self.result.area},
                    curve="rescale",
                    areas=areas,
                )
            else:
                config = self.config(curve="retrain", areas=areas)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        trained = self.result if mode == "rescale" else None
        self._curve_x, self._curve_y = [], []
        self.points.setData([], [])
        self.plot.setXRange(0, 100 * max(areas) * 1.05 + 1)
        self.status.setText(f"success at {len(areas)} sizes…")
        return self._start(
            run_patch,
            config,
            trained,
            "Patch success vs size",
            "The curve against size failed",
            lambda run: self._show_curve(run.size_curve()),
        )

    def _show_curve(self, curve) -> None:
        self.curve = curve
        self.points.setData([100 * a for a in curve.areas], curve.success)
        how = "one patch per size" if curve.retrained else "this patch resized"
        best = max(range(len(curve.areas)), key=lambda i: curve.success[i])
        self.status.setText(
            f"Success towards {self._target_name(curve.target)} ({how}): "
            + ", ".join(f"{a:.0%} → {s:.0%}" for a, s in zip(curve.areas, curve.success))
            + f"; best at {curve.areas[best]:.0%}."
        )
        self.size_curve.emit(curve)

    # -- the patch on the current image -------------------------------------------------------
    def _model_view(self):
        """The current image as the model sees it (1, C, H, W), or None."""
        model, image = self.lab.state.model, self.lab.state.image
        if image is None:
            return None
        import torch

        from advstudio.core.images import to_tensor

        x = to_tensor(image)
        if model is not None and hasattr(model, "prepare"):
            with torch.no_grad():
                x = model.prepare(x.to(model.device)).cpu()
        return x

    def _stage(self) -> None:
        """The current image (the model's view of it) with the patch at its centre."""
        if self.outline is not None:
            self.scene.removeItem(self.outline)
            self.outline = None
        self._base = self._model_view()
        if self._base is None:
            self._background.setPixmap(QPixmap())
            self.prediction.setText("—")
            return
        h, w = self._base.shape[-2:]
        self.scene.setSceneRect(0, 0, w, h)
        if self.result is None or not self._fits(self.result.patch, self._base):
            self._show_composed(self._base)
            self.view.fit()
            return
        side = self.result.patch.shape[-1]
        self.outline = _Outline(side, QRectF(0, 0, w, h), self._moved)
        self.scene.addItem(self.outline)
        self.view.fit()
        self.reset_geometry()

    @staticmethod
    def _fits(patch, x) -> bool:
        """A patch of another model is kept (a transfer test) when it has the image's channels
        and fits inside it."""
        return patch.shape[0] == x.shape[1] and patch.shape[-1] <= min(x.shape[-2:])

    def reset_geometry(self) -> None:
        if self._base is None:
            return
        h, w = self._base.shape[-2:]
        self.set_geometry(row=h / 2, col=w / 2, scale=1.0, angle=0.0)

    def geometry_now(self) -> dict[str, float]:
        """The patch's place: centre ``row`` / ``col`` (image pixels), ``scale``, ``angle``
        (degrees, clockwise)."""
        return {
            "row": self.row,
            "col": self.col,
            "scale": self.scale.value() / 100,
            "angle": self.angle.value(),
        }

    def set_geometry(
        self,
        row: float | None = None,
        col: float | None = None,
        scale: float | None = None,
        angle: float | None = None,
    ) -> None:
        """Move / scale / turn the patch (scripts, keys, wheel, spin boxes); the view, the spin
        boxes and, once the timer fires, the prediction follow."""
        if self._syncing:
            return
        self._syncing = True
        try:
            if scale is not None:
                self.scale.setValue(round(scale * 100))
            if angle is not None:
                angle = (angle + 180) % 360 - 180
                self.angle.setValue(angle)
            if self.outline is not None:
                if row is not None or col is not None:
                    self.outline.setPos(
                        self.col if col is None else col, self.row if row is None else row
                    )
                    self.row, self.col = self.outline.pos().y(), self.outline.pos().x()
                self.outline.setScale(self.scale.value() / 100)
                self.outline.setRotation(self.angle.value())
        finally:
            self._syncing = False
        self._changed()

    def _moved(self, row: float, col: float) -> None:
        self.row, self.col = row, col
        if not self._syncing:
            self._changed()

    def move_patch(self, top: float, left: float) -> None:
        """Put the (scaled, unturned) patch's top-left corner at image pixel (``top``,
        ``left``) (scripts, tests)."""
        if self.result is not None:
            half = self.result.patch.shape[-1] * self.scale.value() / 100 / 2
            self.set_geometry(row=top + half, col=left + half)

    def grow(self, percent: float) -> None:
        self.set_geometry(scale=(self.scale.value() + percent) / 100)

    def turn(self, degrees: float) -> None:
        self.set_geometry(angle=self.angle.value() + degrees)

    def key(self, key: int, modifiers) -> bool:
        """The view's keys; True when the key was one of them."""
        if self.outline is None:
            return False
        step = 5 if modifiers & Qt.KeyboardModifier.ShiftModifier else 1
        moves = {
            Qt.Key.Key_Left: (0, -step),
            Qt.Key.Key_Right: (0, step),
            Qt.Key.Key_Up: (-step, 0),
            Qt.Key.Key_Down: (step, 0),
        }
        if key in moves:
            dr, dc = moves[key]
            self.set_geometry(row=self.row + dr, col=self.col + dc)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.grow(SCALE_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.grow(-SCALE_STEP)
        elif key == Qt.Key.Key_BracketLeft:
            self.turn(-ANGLE_STEP)
        elif key == Qt.Key.Key_BracketRight:
            self.turn(ANGLE_STEP)
        elif key == Qt.Key.Key_0:
            self.reset_geometry()
        else:
            return False
        return True

    def _changed(self) -> None:
        g = self.geometry_now()
        self.where.setText(
            f"centre ({g['row']:.1f}, {g['col']:.1f}) px · keys: arrows, + −, [ ], 0"
        )
        if self.outline is not None and not self.timer.isActive():
            self.timer.start()

    def composed(self):
        """The current image (as the model sees it) with the patch where it is now: what the
        view shows and the prediction is of. (1, C, H, W) on CPU, or None."""
        if self.outline is None or self._base is None:
            return None
        from advstudio.core.attacks.patch import fixed_placement, paste

        g = self.geometry_now()
        where = fixed_placement(1, g["row"], g["col"], g["angle"], g["scale"])
        return paste(self._base, self.result.patch.cpu(), where)[0]

    def _show_composed(self, x) -> None:
        from advstudio.core.images import from_tensor

        self._background.setPixmap(QPixmap.fromImage(array_to_qimage(from_tensor(x))))

    def update_prediction(self) -> None:
        """Compose, show and predict once (the timer's slot)."""
        model = self.lab.state.model
        x = self.composed()
        if x is None or model is None:
            return
        self._show_composed(x)
        start = time.perf_counter()
        top = model.predict(x.to(model.device), k=1)[0]
        spent_ms = 1000 * (time.perf_counter() - start)
        self.timer.setInterval(max(PREDICT_MS, math.ceil(2 * spent_ms)))
        self.last_prediction = top
        text = f"With the patch: {model.class_names[top.indices[0]]} ({top.probs[0] * 100:.1f} %)"
        self.prediction.setText(text)
        self.predicted.emit(text)

    # -- export -------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        # the last export folder, as every other export (it always started in the home folder)
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export patch", str(start / "patch.png"), "PNG (*.png)"
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, path: Path) -> Path:
        from advstudio.core.attacks.patch import save_patch

        return save_patch(self.result.patch, path)
