"""Playground tab: a small GAN on 2-D points, trained live or one update at a time, so the ways
GANs fail (collapse onto a few modes, oscillation, a discriminator that wins) can be seen.

The plot shows real points (green) and generated ones (purple) over D's output (heat map, green
where D says "real"), G's image of a regular latent grid (the warped mesh) and the direction G's
loss pushes each sample (arrows). Hyper-parameters changed while training runs reach the job
before its next step (through :class:`LiveParams`); the step buttons (keys D, G, Space) run one
update on the UI thread (a few milliseconds) while training is stopped or paused.

Run alone: ``python -m advstudio.ui.playground.tab``.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, QSettings, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.core.playground import (
    LOSSES,
    OPTIMISERS,
    TARGET_NAMES,
    VIEW,
    Diagnostics,
    LiveParams,
    Playground,
    PlaygroundConfig,
    PlaygroundParams,
    make_target,
    run_playground,
)
from advstudio.core.playground.job import measure, prepare_playground
from advstudio.core.playground.model import ARROWS, one_thread
from advstudio.core.playground.targets import SD
from advstudio.ui.state import AppState
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.live_plot import LivePlot
from advstudio.ui.widgets.plot_theme import themed
from advstudio.ui.widgets.run_controls import RunControls
from advstudio.workers import JobManager, JobWorker

REAL, FAKE, D_COLOUR, G_COLOUR = (27, 158, 119), (117, 60, 170), (31, 119, 180), (214, 39, 40)
LOSS_NAMES = {
    "minimax": "minimax",
    "non-saturating": "non-saturating",
    "wgan-gp": "WGAN-GP",
    "hinge": "hinge",
}
LOSS_TIPS = {
    "minimax": "Minimax (saturating): G minimises log(1 − D(G(z))), Goodfellow et al. 2014",
    "non-saturating": "Non-saturating: G maximises log D(G(z)), Goodfellow et al. 2014",
    "wgan-gp": "Wasserstein loss with gradient penalty, Gulrajani et al. 2017",
    "hinge": "Hinge loss, Miyato et al. 2018 / Lim & Ye 2017",
}
SHORT_TARGET_NAMES = {"grid": "5×5 grid"}
OPTIMISER_NAMES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}


class SquarePlotHolder(QWidget):
    """Holds the playground's plot so that its view box is square: with the aspect locked, a
    wider box showed white bands beyond the heat map's x = ±3 (issue #19, at 1920×1080). The
    plot is centred; the axes' own width and height are measured and left outside the square."""

    def __init__(self, plot: pg.PlotWidget) -> None:
        super().__init__()
        self.plot = plot
        plot.setParent(self)
        self.setMinimumSize(plot.minimumSize())
        plot.getPlotItem().vb.sigResized.connect(self._fit)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self, *_) -> None:
        vb = self.plot.getPlotItem().vb.size()
        if vb.width() <= 0 or vb.height() <= 0:  # not laid out yet: the whole space for now
            self.plot.setGeometry(self.rect())
            return
        extra_w = self.plot.width() - vb.width()  # the axes around the view box
        extra_h = self.plot.height() - vb.height()
        side = max(1, int(min(self.width() - extra_w, self.height() - extra_h)))
        w, h = int(side + extra_w), int(side + extra_h)
        x, y = (self.width() - w) // 2, (self.height() - h) // 2
        if (
            abs(self.plot.x() - x) > 0
            or abs(self.plot.width() - w) > 1
            or abs(self.plot.height() - h) > 1
            or abs(self.plot.y() - y) > 0
        ):
            self.plot.setGeometry(x, y, w, h)


DRAW_SPACING = SD  # a drag adds a point only this far (data units) from the last one
ARROW_LENGTH = 0.35  # the 90th-percentile arrow is drawn this long (data units)


SPEED_SMOOTHING = 0.15  # weight of a new steps/s reading in the shown average


class DrawViewBox(pg.ViewBox):
    """A fixed view box that, while ``drawing``, turns left clicks and drags into points:
    ``drawn(x, y, stroke)`` in data units, ``stroke`` True for the moves of a drag after its
    first point (the tab fills in the line from the previous point)."""

    drawn = Signal(float, float, bool)

    def __init__(self) -> None:
        super().__init__(enableMenu=False)
        self.drawing = False
        self.setMouseEnabled(False, False)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph override
        if self.drawing and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.drawn.emit(p.x(), p.y(), False)
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - pyqtgraph override
        if self.drawing and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():  # the stroke begins where the button went down
                p = self.mapSceneToView(ev.buttonDownScenePos())
                self.drawn.emit(p.x(), p.y(), False)
            p = self.mapSceneToView(ev.scenePos())
            self.drawn.emit(p.x(), p.y(), True)
        else:
            ev.ignore()


def mesh_lines(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the rows and columns of a (m, m, 2) mesh as one NaN-separated polyline."""
    m = mesh.shape[0]
    nan = np.full((m, 1, 2), np.nan, np.float32)
    rows = np.concatenate([mesh, nan], 1).reshape(-1, 2)
    cols = np.concatenate([mesh.transpose(1, 0, 2), nan], 1).reshape(-1, 2)
    both = np.concatenate([rows, cols])
    return both[:, 0], both[:, 1]


def segments(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y for a ``connect="pairs"`` item: one segment from each start to its end."""
    pairs = np.stack([start, end], 1).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


class PlaygroundTab(QWidget):
    snapshot_shown = Signal(object)  # Snapshot, after it is drawn

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models=None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.jobs = state, jobs
        self.settings = settings or QSettings()
        self.playground: Playground | None = None
        self.points: list[tuple[float, float]] = []
        self.diagnostics = Diagnostics()
        self.seed = 0
        self.frames = 0
        self.last_values: dict[str, float] = {}
        self.live = LiveParams()
        self._job_parked = False
        self._shown_real: np.ndarray | None = None
        self._moves_shown = False
        self._hidden_snapshot = None
        self._build()
        self._push_params()
        self._prepare()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.settings
        self.target = QComboBox()
        for key, name in TARGET_NAMES.items():
            # short labels (cut at 1280×720), the full name in the item's tooltip
            self.target.addItem(SHORT_TARGET_NAMES.get(key, name), key)
            self.target.setItemData(self.target.count() - 1, name, Qt.ItemDataRole.ToolTipRole)
        self.draw_button = QPushButton("Draw", checkable=True)
        self.draw_button.setToolTip(
            "Click or drag on the plot to add points; they become the "
            "training data (distribution: Drawn points)"
        )
        self.clear_button = QPushButton("Clear points")
        self.loss = QComboBox()
        for key in LOSSES:
            self.loss.addItem(LOSS_NAMES[key], key)
            self.loss.setItemData(
                self.loss.count() - 1, LOSS_TIPS[key], Qt.ItemDataRole.ToolTipRole
            )
        self.optimiser = QComboBox()
        for key in OPTIMISERS:
            self.optimiser.addItem(OPTIMISER_NAMES[key], key)
        self.lr_g = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4)
        self.lr_d = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4)
        self.d_steps = QSpinBox(minimum=1, maximum=20)
        self.batch = QSpinBox(minimum=1, maximum=4096, singleStep=32)
        self.gp_weight = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=100.0, singleStep=0.5)
        self.gp_weight.setToolTip("WGAN-GP: weight of the gradient penalty (|grad D| - 1)^2")
        defaults = PlaygroundParams()
        self.target.setCurrentIndex(
            max(0, self.target.findData(s.value("playground/target", "ring")))
        )
        if self.target.currentData() == "drawn":
            self.target.setCurrentIndex(0)  # drawn points are not remembered
        self.loss.setCurrentIndex(
            max(0, self.loss.findData(s.value("playground/loss", defaults.loss)))
        )
        self.optimiser.setCurrentIndex(
            max(0, self.optimiser.findData(s.value("playground/optimiser", defaults.optimiser)))
        )
        self.lr_g.setValue(float(s.value("playground/lr_g", defaults.lr_g)))
        self.lr_d.setValue(float(s.value("playground/lr_d", defaults.lr_d)))
        self.d_steps.setValue(int(s.value("playground/d_steps", defaults.d_steps)))
        self.batch.setValue(int(s.value("playground/batch", defaults.batch_size)))
        self.gp_weight.setValue(float(s.value("playground/gp_weight", defaults.gp_weight)))
        for combo in (self.target, self.loss, self.optimiser):
            combo.currentIndexChanged.connect(self._push_params)
        for spin in (self.lr_g, self.lr_d, self.d_steps, self.batch, self.gp_weight):
            spin.valueChanged.connect(self._push_params)
        self.draw_button.toggled.connect(self._on_draw_toggled)
        self.clear_button.clicked.connect(self.clear_points)

        form = QFormLayout()
        draw_row = QHBoxLayout()
        draw_row.addWidget(self.draw_button)
        draw_row.addWidget(self.clear_button)
        form.addRow("Data", self.target)
        form.addRow("", draw_row)
        for label, w in (
            ("Loss", self.loss),
            ("Optimiser", self.optimiser),
            ("lr G", self.lr_g),
            ("lr D", self.lr_d),
            ("D steps per G step", self.d_steps),
            ("Batch", self.batch),
            ("GP weight", self.gp_weight),
        ):
            form.addRow(label, w)

        self.controls = RunControls("Start")
        self.start_button = self.controls.start_button
        self.pause_button = self.controls.pause_button
        self.stop_button = self.controls.stop_button
        self.controls.resuming.connect(lambda: self._set_parked(False))  # before its next step
        self.reset_button = QPushButton("Reset networks")
        self.reset_button.setToolTip("New random weights for G and D (the curves are cleared)")
        self.step_d_button = QPushButton("Step D")
        self.step_d_button.setToolTip(
            "One discriminator update on a real and a fake batch, G fixed (key D)"
        )
        self.step_g_button = QPushButton("Step G")
        self.step_g_button.setToolTip(
            "One generator update through D, no real samples, D fixed (key G)"
        )
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip(
            "D steps per G step discriminator updates, then one generator update (Space)"
        )
        self.start_button.clicked.connect(self.start)
        self.reset_button.clicked.connect(self.reset)
        self.step_d_button.clicked.connect(self.step_d)
        self.step_g_button.clicked.connect(self.step_g)
        self.step_button.clicked.connect(self.step_once)
        run_row = QHBoxLayout()
        run_row.addWidget(self.controls)
        step_row = QHBoxLayout()
        for b in (self.step_d_button, self.step_g_button, self.step_button):
            step_row.addWidget(b)
        for key, slot in (("D", self.step_d), ("G", self.step_g), ("Space", self.step_once)):
            shortcut = QShortcut(QKeySequence(key), self, activated=slot)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.show_heat = QCheckBox("D(x) heat map")
        self.show_mesh = QCheckBox("Generator mesh")
        self.show_arrows = QCheckBox("Gradient arrows")
        for box, key, default in (
            (self.show_heat, "show_heat", True),
            (self.show_mesh, "show_mesh", True),
            (self.show_arrows, "show_arrows", False),
        ):
            box.setChecked(str(s.value(f"playground/{key}", default)).lower() == "true")
            box.toggled.connect(lambda on, k=key: self._on_layer(k, on))
        self.status = QLabel(
            "Pick a distribution and press Start, or step one update at a time.", wordWrap=True
        )
        self.job = JobOwner(self, self.jobs, self.status)

        left = QGroupBox("Playground")
        lb = QVBoxLayout(left)
        lb.addLayout(form)
        lb.addLayout(run_row)
        lb.addWidget(self.reset_button)
        lb.addLayout(step_row)
        for box in (self.show_heat, self.show_mesh, self.show_arrows):
            lb.addWidget(box)
        lb.addWidget(self.status)
        lb.addStretch(1)
        left.setFixedWidth(290)

        self._build_plot()

        self.loss_plot = LivePlot("Losses", "loss")
        self.loss_plot.add_curve("loss_d", (*D_COLOUR, 70))
        self.loss_plot.add_curve("loss D", D_COLOUR, width=2, smooth_of="loss_d")
        self.loss_plot.add_curve("loss_g", (*G_COLOUR, 70))
        self.loss_plot.add_curve("loss G", G_COLOUR, width=2, smooth_of="loss_g")
        self.d_plot = LivePlot("Discriminator outputs", "sigmoid D")
        self.d_plot.add_curve("d_real", (*REAL, 60))
        self.d_plot.add_curve("D(x)", REAL, width=2, smooth_of="d_real")
        self.d_plot.add_curve("d_fake", (*FAKE, 60))
        self.d_plot.add_curve("D(G(z))", FAKE, width=2, smooth_of="d_fake")
        self.d_plot.plot.setYRange(0, 1)
        self.d_plot.plot.getAxis("left").enableAutoSIPrefix(False)
        half = pg.mkPen((120, 120, 120), style=Qt.PenStyle.DashLine)
        self.d_plot.plot.addItem(pg.InfiniteLine(0.5, angle=0, pen=half))
        for p in (self.loss_plot, self.d_plot):
            for name in ("loss_d", "loss_g", "d_real", "d_fake"):
                item = p.items.get(name)
                if item is not None:  # the raw curves stay out of the legend
                    p.plot.getPlotItem().legend.removeItem(item)
        self.step_label = QLabel("Step 0")
        self.modes_label = QLabel("Modes covered: –")
        self.quality_label = QLabel("High-quality samples: –")
        self.d_label = QLabel("D(x) –   D(G(z)) –")
        self.speed_label = QLabel("")
        self._speed: float | None = None  # steps/s, smoothed (see _show_metrics)
        for label in (self.modes_label, self.quality_label):
            label.setStyleSheet("font-size: 14px; font-weight: bold;")
        self.badge = QLabel(wordWrap=True)
        self.badge.setTextFormat(Qt.TextFormat.RichText)
        metrics = QGridLayout()
        for i, w in enumerate(
            (self.step_label, self.speed_label, self.modes_label, self.quality_label, self.d_label)
        ):
            metrics.addWidget(w, i, 0)
        right = QVBoxLayout()
        right.addWidget(self.loss_plot, 1)
        right.addWidget(self.d_plot, 1)
        right.addLayout(metrics)
        right.addWidget(self.badge)
        right_w = QWidget()
        right_w.setLayout(right)
        right_w.setFixedWidth(360)

        layout = QHBoxLayout(self)
        layout.addWidget(left)
        self.plot_holder = SquarePlotHolder(self.plot)
        layout.addWidget(self.plot_holder, 1)
        layout.addWidget(right_w)
        self._update_buttons()

    def _build_plot(self) -> None:
        self.view = DrawViewBox()
        self.view.drawn.connect(self.add_point)
        self.plot = pg.PlotWidget(viewBox=self.view, background="w")
        self.plot.setMinimumSize(360, 360)
        themed(self.plot)  # the axes around the heat map follow the theme
        self.plot.hideButtons()
        xmin, xmax, ymin, ymax = VIEW
        self.view.setRange(xRange=(xmin, xmax), yRange=(ymin, ymax), padding=0)
        self.view.disableAutoRange()
        self.view.setAspectLocked(True)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self._heat_placed = False
        # colours applied here, not by the item: an RGBA image draws scaled in well under a
        # millisecond, the item's own indexed-colour image took ~5 ms a frame (software raster)
        self.heat_lut = pg.ColorMap(
            [0.0, 0.5, 1.0], [(196, 168, 228), (255, 255, 255), (168, 222, 194)]
        ).getLookupTable(0.0, 1.0, 256, alpha=True)
        self.mesh = pg.PlotDataItem(connect="finite", pen=pg.mkPen((90, 90, 90, 110), width=1))
        self.moves = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((*FAKE, 150), width=1))
        self.ghost = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*FAKE, 60))
        self.real = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*REAL, 200))
        self.fake = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*FAKE, 200))
        self.arrows = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((40, 40, 40, 170), width=1))
        self.drawn_item = pg.ScatterPlotItem(
            size=9, pen=pg.mkPen(0, 0, 0), brush=pg.mkBrush(*REAL, 255)
        )
        for item in (
            self.heat,
            self.mesh,
            self.moves,
            self.ghost,
            self.real,
            self.fake,
            self.arrows,
            self.drawn_item,
        ):
            self.plot.addItem(item)
        self.heat.setZValue(-10)
        self.legend_label = pg.TextItem(anchor=(0, 0))
        self.legend_label.setHtml(
            f"<span style='color: rgb{REAL}; font-size: 13px'>● real</span>&nbsp;&nbsp;"
            f"<span style='color: rgb{FAKE}; font-size: 13px'>● generated</span>&nbsp;&nbsp;"
            "<span style='color: #555; font-size: 12px'>background: D(x), green = "
            '"real"</span>'
        )
        self.legend_label.setPos(xmin + 0.05, ymax - 0.05)
        self.plot.addItem(self.legend_label)
        self._apply_layers()

    # -- parameters ---------------------------------------------------------------------------
    def current_target(self):
        """The chosen distribution (``ConfigError`` for "Drawn points" with none drawn)."""
        return make_target(self.target.currentData(), self.points)

    def params(self) -> PlaygroundParams:
        """The widgets' hyper-parameters, validated (``ConfigError`` names a bad value)."""
        return PlaygroundParams(
            target=self.current_target(),
            loss=self.loss.currentData(),
            optimiser=self.optimiser.currentData(),
            lr_g=self.lr_g.value(),
            lr_d=self.lr_d.value(),
            d_steps=self.d_steps.value(),
            batch_size=self.batch.value(),
            gp_weight=self.gp_weight.value(),
        ).validated()

    def _push_params(self) -> bool:
        """Hand the widgets' values to the running job (it reads them before its next step)
        and to the next manual step; remember them."""
        try:
            params = self.params()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return False
        self.live.set(params)
        self.gp_weight.setEnabled(params.loss == "wgan-gp")
        for key, value in (
            ("target", self.target.currentData()),
            ("loss", params.loss),
            ("optimiser", params.optimiser),
            ("lr_g", params.lr_g),
            ("lr_d", params.lr_d),
            ("d_steps", params.d_steps),
            ("batch", params.batch_size),
            ("gp_weight", params.gp_weight),
        ):
            self.settings.setValue(f"playground/{key}", value)
        if self.playground is None:
            self._show_target(params.target)
        elif self.can_step:  # the job (if any) is parked: show the change now
            with one_thread():
                self.playground.apply(params)
                snap = self.playground.snapshot()
            self._show(snap)
        return True

    # -- drawing ------------------------------------------------------------------------------
    def _on_draw_toggled(self, on: bool) -> None:
        self.view.drawing = on
        if on:
            self.target.setCurrentIndex(self.target.findData("drawn"))
            self.status.setText("Click or drag on the plot to add points.")

    def add_point(self, x: float, y: float, stroke: bool = False) -> None:
        """A point drawn at (x, y) in data units joins the training data. Within a drag
        (``stroke``) the line from the previous point is filled in every ``DRAW_SPACING``
        (mouse moves arrive at most ~60 times a second, far apart on a quick stroke), and
        points closer than that to the previous one are skipped."""
        xmin, xmax, ymin, ymax = VIEW
        x, y = min(max(x, xmin), xmax), min(max(y, ymin), ymax)
        if self.points:
            px, py = self.points[-1]
            gap = ((px - x) ** 2 + (py - y) ** 2) ** 0.5
            if stroke and gap < DRAW_SPACING:
                return
            if stroke:
                n = int(gap // DRAW_SPACING)
                self.points += [(px + (x - px) * i / n, py + (y - py) * i / n) for i in range(1, n)]
        self.points.append((x, y))
        self._show_drawn()
        if self.target.currentData() != "drawn":
            self.target.setCurrentIndex(self.target.findData("drawn"))  # pushes the params
        else:
            self._push_params()
        self.status.setText(f"{len(self.points)} point(s) drawn.")

    def clear_points(self) -> None:
        self.points.clear()
        self._show_drawn()
        if self.target.currentData() == "drawn":
            self.status.setText(
                "Points cleared; draw new ones (training keeps the last drawn set until then)."
            )

    def _show_drawn(self) -> None:
        pts = np.asarray(self.points, np.float32).reshape(-1, 2)
        self.drawn_item.setData(pts[:, 0], pts[:, 1])

    # -- running ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job.busy

    @property
    def worker(self) -> JobWorker | None:
        """The latest training job (None before the first Start)."""
        return self.job.worker

    @property
    def can_step(self) -> bool:
        """No job is using the playground: none runs, or it has *reported* being paused (it
        then waits before its next step; a pause merely asked for may still be mid-step)."""
        return not self.running or self._job_parked

    def _ensure_playground(self) -> bool:
        """The widgets' parameters are valid and a playground exists (built if needed)."""
        try:
            params = self.params()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return False
        self.live.set(params)
        if self.playground is None:
            self.playground = Playground(params, PlaygroundConfig(seed=self.seed))
            self.diagnostics = Diagnostics()
        return True

    def _prepare(self) -> None:
        """Build the first networks on a job thread: the first optimiser of the process
        imports PyTorch's compiler stack, seconds the UI thread must not wait."""
        try:
            params = self.params()
        except ConfigError:
            return
        config = PlaygroundConfig(seed=self.seed)

        def ready(play: Playground) -> None:
            if self.playground is None:  # no step or start built one meanwhile
                self.playground = play
                self._push_params()

        self.jobs.start(
            lambda: prepare_playground(params, config),
            "Preparing the playground",
            show_in_status=False,
            connect=lambda w: w.returned.connect(ready),
        )

    def start(self) -> JobWorker | None:
        if self.running or not self._ensure_playground():
            return None
        playground, live, diagnostics = self.playground, self.live, self.diagnostics
        self._speed = None  # a new run measures its own speed

        def connect(w: JobWorker) -> None:
            w.metrics.connect(self._on_metrics)
            w.preview.connect(lambda p: self._show(p.data))
            w.aborted.connect(
                lambda: self.status.setText(
                    f"Stopped at step {playground.steps_done}. Start continues; Reset starts over."
                )
            )
            w.paused.connect(lambda: self._set_parked(True))
            w.resumed.connect(lambda: self._set_parked(False))
            w.finished.connect(self._update_buttons)

        self._job_parked = False
        worker = self.controls.attach(
            self.job.start(
                lambda: run_playground(playground, live, diagnostics=diagnostics),
                "GAN playground",
                "Playground training failed",
                connect=connect,
            )
        )
        self.status.setText("Training. Change any setting: the next step uses it.")
        self._update_buttons()
        return worker

    def toggle_pause(self) -> None:
        self.controls.toggle_pause()

    def _set_parked(self, parked: bool) -> None:
        self._job_parked = parked
        self._update_buttons()

    def stop(self) -> None:
        self.controls.stop()

    def reset(self) -> None:
        """New random networks (the next seed); curves and warnings start over."""
        if self.running:
            return
        self.seed += 1
        self.playground = None
        self.diagnostics = Diagnostics()
        self.last_values = {}
        for p in (self.loss_plot, self.d_plot):
            p.clear()
        self.badge.setText("")
        if self._ensure_playground():
            with one_thread():
                snap = self.playground.snapshot()
                measured = measure(snap.fake, self.playground.target, self.diagnostics)
            self._show_metrics(measured, 0)
            self._show(snap)
            self.status.setText(f"New networks (seed {self.seed}).")

    def _update_buttons(self) -> None:
        self.reset_button.setEnabled(not self.running)  # RunControls: Start, Pause and Stop
        for b in (self.step_d_button, self.step_g_button, self.step_button):
            b.setEnabled(self.can_step)

    # -- step mode ----------------------------------------------------------------------------
    def step_d(self) -> dict[str, float] | None:
        """One discriminator update, on the UI thread (a few milliseconds)."""
        return self._manual("d")

    def step_g(self) -> dict[str, float] | None:
        """One generator update, on the UI thread."""
        return self._manual("g")

    def step_once(self) -> dict[str, float] | None:
        """``D steps per G step`` discriminator updates and one generator update."""
        return self._manual("")

    def _manual(self, phase: str) -> dict[str, float] | None:
        if not self.can_step or not self._ensure_playground():
            return None
        play = self.playground
        with one_thread():  # tiny tensors: see one_thread (a few ms on the UI thread)
            play.apply(self.live.get())
            before = play.sample()
            values = {"d": play.d_step, "g": play.g_step, "": play.step}[phase]()
            if "loss_g" in values:
                self.diagnostics.add_step(play.steps_done, values["loss_g"])
            snap = play.snapshot()
            snap.moved, snap.phase = before, phase
            measured = measure(snap.fake, play.target, self.diagnostics)
        self._plot_values(play.steps_done + (0.5 if phase == "d" else 0), values)
        self._show_metrics(measured, play.steps_done)
        self._show(snap)
        if phase == "d":
            self.status.setText(
                f"D step: loss D {values['loss_d']:.3f}, D(x) "
                f"{values['d_real']:.2f}, D(G(z)) {values['d_fake']:.2f}. "
                "The heat map shows D after the update; G did not move."
            )
        elif phase == "g":
            self.status.setText(
                f"G step: loss G {values['loss_g']:.3f}. The lines show how "
                "far each generated point moved; D did not change."
            )
        else:
            self.status.setText(
                f"Step {play.steps_done}: loss D {values['loss_d']:.3f}, loss G "
                f"{values['loss_g']:.3f}."
            )
        return values

    # -- showing ------------------------------------------------------------------------------
    def _plot_values(self, x: float, v: dict[str, float]) -> None:
        if "loss_d" in v:
            self.loss_plot.add("loss_d", x, v["loss_d"])
            self.d_plot.add("d_real", x, v["d_real"])
            self.d_plot.add("d_fake", x, v["d_fake"])
        if "loss_g" in v:
            self.loss_plot.add("loss_g", x, v["loss_g"])
        self.last_values.update(v)

    def _on_metrics(self, m) -> None:
        self._plot_values(m.step, m.values)
        if "modes_covered" in m.values:
            self._show_metrics(m.values, m.step)

    def _show_metrics(self, v: dict[str, float], step: int) -> None:
        self.step_label.setText(f"Step {step:,}")
        if "steps_per_s" in v:
            # each reading covers one preview interval (a tenth of a second), so it jumped
            # 5 <-> 68 as the UI thread and the job took turns; the label shows an average
            rate = v["steps_per_s"]
            old = self._speed
            self._speed = rate if old is None else old + SPEED_SMOOTHING * (rate - old)
            self.speed_label.setText(f"{self._speed:,.0f} steps/s")
        self.modes_label.setText(f"Modes covered: {v['modes_covered']:.0f} of {v['n_modes']:.0f}")
        self.quality_label.setText(f"High-quality samples: {100 * v['quality']:.0f} %")
        lv = self.last_values
        if "d_real" in lv:
            self.d_label.setText(
                f"D(x) {lv['d_real']:.2f}   D(G(z)) {lv['d_fake']:.2f}  (both → 0.5 at equilibrium)"
            )
        badges = []
        if v.get("collapse"):
            badges.append(
                (
                    "#b35806",
                    f"Mode collapse: only {v['modes_covered']:.0f} of "
                    f"{v['n_modes']:.0f} modes covered",
                )
            )
        if v.get("oscillation"):
            badges.append(
                (
                    "#b35806",
                    "Oscillation: the generator's loss swings up and down "
                    "(often G hopping from mode to mode)",
                )
            )
        if not badges and v["n_modes"] and v["modes_covered"] == v["n_modes"]:
            badges.append(("#1a9850", f"All {v['n_modes']:.0f} modes covered"))
        self.badge.setText(
            "<br>".join(
                f"<span style='color:{c}; font-size:14px'><b>● {t}</b></span>" for c, t in badges
            )
        )

    def _show_target(self, target) -> None:
        """Before any network exists: the target's points alone."""
        pts = target.sample(1000, torch.Generator().manual_seed(0)).numpy()
        self.real.setData(pts[:, 0], pts[:, 1])
        self._shown_real = None

    def _on_layer(self, key: str, on: bool) -> None:
        self.settings.setValue(f"playground/{key}", on)
        self._apply_layers()

    def _apply_layers(self) -> None:
        self.heat.setVisible(self.show_heat.isChecked())
        self.mesh.setVisible(self.show_mesh.isChecked())
        self.arrows.setVisible(self.show_arrows.isChecked())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._hidden_snapshot is not None:
            snap, self._hidden_snapshot = self._hidden_snapshot, None
            self._show(snap)

    def _show(self, snap) -> None:
        """Draw a Snapshot: every item is reused (setData), the view box never moves. While
        the tab is hidden (another tab in front) only the latest one is kept, drawn on show."""
        if not self.isVisible():
            self._hidden_snapshot = snap
            return
        self.frames += 1
        if self._shown_real is None or not np.array_equal(self._shown_real, snap.real):
            self.real.setData(snap.real[:, 0], snap.real[:, 1])  # new data only
            self._shown_real = snap.real
        self.fake.setData(snap.fake[:, 0], snap.fake[:, 1])
        if self.show_heat.isChecked():
            index = (np.clip(snap.heat, 0.0, 1.0) * 255).astype(np.uint8)
            self.heat.setImage(self.heat_lut[index], autoLevels=False)
            if not self._heat_placed:  # the item maps its pixels to the view box once it
                xmin, xmax, ymin, ymax = snap.view  # knows their count
                self.heat.setRect(QRectF(xmin, ymin, xmax - xmin, ymax - ymin))
                self._heat_placed = True
        if self.show_mesh.isChecked():
            self.mesh.setData(*mesh_lines(snap.mesh))
        if self.show_arrows.isChecked() and len(snap.arrows):
            lengths = np.linalg.norm(snap.arrows, axis=1)
            scale = ARROW_LENGTH / max(float(np.percentile(lengths, 90)), 1e-12)
            push = snap.arrows * scale
            too_long = np.maximum(
                np.linalg.norm(push, axis=1, keepdims=True) / (2 * ARROW_LENGTH), 1.0
            )
            start = snap.fake[:ARROWS]
            self.arrows.setData(*segments(start, start + push / too_long))
        if snap.moved is not None and snap.phase != "d":  # D steps move no point
            self.ghost.setData(snap.moved[:, 0], snap.moved[:, 1])
            self.moves.setData(*segments(snap.moved, snap.fake))
            self._moves_shown = True
        elif self._moves_shown:
            self.ghost.setData([], [])
            self.moves.setData([], [])
            self._moves_shown = False
        self.snapshot_shown.emit(snap)


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(PlaygroundTab)
