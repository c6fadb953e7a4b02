"""GAN tab: train a GAN or DCGAN on any data set of the one data-set picker (the bundled
digits, a folder, torchvision sets, at 28, 32 or 64 px, grey or colour) and watch both networks
live: losses, D's outputs, gradient norms, diversity, classes covered and Fréchet distance (read
by a judge that fits the data, named under the picker), a sample grid from fixed noise with a
time-lapse strip, and badges for the classic difficulties.

Side by side: with "Compare runs" ticked, each Train adds a run to the plots instead of
replacing them, in its own colour with a legend entry naming its configuration, so the effect
of a loss or a stabiliser is seen on the same axes (as the Defence tab overlays its runs).

Run alone: ``python -m advstudio.ui.gan.tab``.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.core.gan.config import BCE_LOSSES, DEFAULT_STEPS_CPU, GanConfig
from advstudio.core.gan.diagnostics import EXPLANATIONS, GanDiagnostics
from advstudio.core.gan.stabilisers import EXPLANATIONS as STABILISERS
from advstudio.core.gan.stabilisers import LR_PRESET_NAMES, LR_PRESETS
from advstudio.ui.model_controller import ModelController
from advstudio.ui.state import AppState
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.image_view import ImageView, array_to_qimage
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.live_plot import LivePlot
from advstudio.ui.widgets.run_controls import RunControls
from advstudio.ui.widgets.why_disabled import set_enabled
from advstudio.workers import JobManager, JobWorker

DEFAULTS = GanConfig()  # the measured defaults (see its docstring); every control starts there
TIMELAPSE_FRAMES = 12
D_COLOUR, G_COLOUR = (31, 119, 180), (214, 39, 40)
RUN_COLOURS = [  # one per compared run (tab10's first six)
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
]
LOSS_SHORT = {
    "non-saturating": "BCE",
    "minimax": "minimax",
    "least-squares": "LSGAN",
    "hinge": "hinge",
    "wgan-gp": "WGAN-GP",
}
COLOUR_SETS = ("torchvision:cifar10", "torchvision:cifar100", "torchvision:svhn")
# why the after-training buttons are disabled (their tooltip while they are)
NOT_TRAINED = "Train a GAN first: this works on the trained generator"
TRAINING = "Training: available when the run finishes"
STOPPED = (
    "The last run was stopped before it finished, so it returned no generator: resume it "
    f"from the Runs tab (it continues from its last checkpoint, made every "
    f"{DEFAULTS.checkpoint_every} steps) or train again"
)
NO_METRICS = "No metrics yet: train a GAN first"
LOSS_NAMES = {  # short, to fit the page at 1280×720; the whole story in the item tooltips
    "non-saturating": "BCE, non-sat.",
    "minimax": "BCE, minimax",
    "least-squares": "LSGAN",
    "hinge": "Hinge",
    "wgan-gp": "WGAN-GP",
}
LOSS_TIPS = {
    "non-saturating": "BCE, non-saturating G. D: BCE on real vs fake; G maximises log D(G(z)) "
    "(strong gradients early)",
    "minimax": "Goodfellow et al.'s original game: G minimises log(1 - D(G(z))), whose "
    "gradient vanishes while D wins",
    "least-squares": "Least squares, Mao et al. 2017: D regresses real to 1 and fake to 0, G "
    "pulls fakes to 1; no saturating sigmoid",
    "hinge": "Miyato et al. 2018: D's margin loss relu(1 - D(x)) + relu(1 + D(G(z))); G "
    "maximises D(G(z)). Pairs well with spectral norm",
    "wgan-gp": "Gulrajani et al. 2017: a critic estimates the Wasserstein distance, kept "
    "1-Lipschitz by a gradient penalty; use several critic steps per G step (5)",
}


class GanTab(QWidget):
    trained = Signal(object)  # GanResult

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models: ModelController | None = None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.jobs = state, jobs
        self.settings = settings or QSettings()
        self.result = None
        self.rows: list[dict[str, float]] = []
        self.runs: list[dict] = []  # the runs on the plots: label, colour, config, rows, result
        self.d_raw = False  # D's plot shows raw outputs (a loss other than BCE is on it)
        self.diagnostics = GanDiagnostics()
        self._frames = 0
        self._build()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.settings
        self.arch = QComboBox()
        # short labels (the 1280-px window showed "DCGAN (Radford e…"), the paper in the tooltip
        self.arch.addItem("DCGAN", "dcgan")
        self.arch.setItemData(
            0,
            "DCGAN: convolutional GAN (Radford, Metz, Chintala 2016)",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.arch.addItem("GAN (MLP)", "gan")
        self.arch.setItemData(
            1,
            "GAN with MLP generator and discriminator (Goodfellow et al. 2014)",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.arch.setCurrentIndex(max(0, self.arch.findData(s.value("gan/arch", "dcgan"))))
        # the training length by device: DEFAULT_STEPS_CPU on a CPU, GanConfig's on a GPU
        default_steps = DEFAULT_STEPS_CPU if self.state.device == "cpu" else DEFAULTS.steps
        self.steps = QSpinBox(
            minimum=1,
            maximum=1_000_000,
            singleStep=100,
            value=int(s.value("gan/steps", default_steps)),
            toolTip=f"Generator steps (default {default_steps:,} on this device: "
            f"{DEFAULT_STEPS_CPU:,} on a CPU, {DEFAULTS.steps:,} on a GPU)",
        )
        self.batch = QSpinBox(
            minimum=2, maximum=4000, value=int(s.value("gan/batch", DEFAULTS.batch_size))
        )
        self.latent = QSpinBox(minimum=1, maximum=1024, value=DEFAULTS.latent_dim)
        self.width = QSpinBox(
            minimum=4, maximum=512, singleStep=8, value=int(s.value("gan/width", DEFAULTS.width))
        )
        self.width.setToolTip(
            "The DCGAN's channel unit: at 28 px G's hidden layers have 4 and 2 times it "
            f"({DEFAULTS.width}: {4 * DEFAULTS.width} and {2 * DEFAULTS.width} channels), D "
            f"mirrors them. {DEFAULTS.width} reached all ten digits and a Fréchet distance "
            "under 400 fastest on a CPU; 64 is Radford et al.'s (about 3 times slower a step)"
        )
        self.lr_g = QDoubleSpinBox(
            decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4, value=DEFAULTS.lr_g
        )
        self.lr_d = QDoubleSpinBox(
            decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4, value=DEFAULTS.lr_d
        )
        self.d_steps = QSpinBox(minimum=1, maximum=10, value=DEFAULTS.d_steps)
        self.smoothing = QDoubleSpinBox(
            decimals=2, minimum=0.0, maximum=0.5, singleStep=0.05, value=DEFAULTS.label_smoothing
        )
        self.smoothing.setToolTip("One-sided label smoothing: real images get target 1 - this")
        self.eval_every = QSpinBox(
            minimum=0, maximum=100_000, singleStep=100, value=DEFAULTS.eval_every
        )
        self.eval_every.setToolTip(
            "Judge 1,000 samples every N steps (classes covered, class entropy, Fréchet "
            "distance) with the judge named below Train: the digit CNN on digits, your "
            "open classifier when its card names the data set's classes; 0 = never"
        )
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=DEFAULTS.seed)
        self.picker = DatasetPicker(s)
        self.picker.setToolTip(
            "Train on the bundled digits, a folder (one sub-folder per class, or any images), "
            "an ImageNet-style folder or a torchvision set (needs the internet the first time); "
            "images are fitted to the image size and channels below"
        )
        self.data = self.picker.combo
        self.picker.changed.connect(self._on_data)
        self.judge_label = QLabel(wordWrap=True)
        self.judge_label.setStyleSheet("font-size: 11px;")
        self.state.model_changed.connect(lambda _m: self._show_judge())
        self._build_loss_controls()
        self.image_size = QComboBox()
        for size in (28, 32, 64):
            self.image_size.addItem(f"{size} px", size)
        self.channels = QComboBox()
        self.channels.addItem("grey", 1)
        self.channels.addItem("colour", 3)
        self.image_size.setToolTip(
            "Generated images are this size; the data set's images are centre-cropped and "
            "resized to it when theirs differ (the log says so)"
        )
        form = QFormLayout()
        form.addRow(QLabel("Data"))
        form.addRow(self.picker)  # the whole width: its set's line wraps under it
        for label, w in (
            ("Image size", self.image_size),
            ("Channels", self.channels),
            ("Networks", self.arch),
            ("Width", self.width),
            ("Steps", self.steps),
            ("Batch", self.batch),
            ("Latent size", self.latent),
            ("lr G", self.lr_g),
            ("lr D", self.lr_d),
            ("D steps per G step", self.d_steps),
            ("Label smoothing", self.smoothing),
            ("Evaluate every", self.eval_every),
            ("Seed", self.seed),
        ):
            form.addRow(label, w)
        self.controls = RunControls("Train")
        self.start_button = self.controls.start_button
        self.pause_button = self.controls.pause_button
        self.stop_button = self.controls.stop_button
        self.start_button.clicked.connect(self.start)
        self.status = QLabel("Trains on the 4,000 bundled digits.", wordWrap=True)
        self.compare = QCheckBox("Compare runs")
        self.compare.setToolTip(
            "Keep the runs on the plots: each Train adds one, in its own colour, named by its "
            "configuration in the legends (solid: D, dashed: G), so a fix is seen on the same "
            "axes as the run without it"
        )
        self.clear_runs_button = QPushButton("Clear runs")
        self.clear_runs_button.setToolTip("Empty the plots of every kept run")
        self.clear_runs_button.clicked.connect(self.clear_runs)
        self.job = JobOwner(self, self.jobs, self.status)
        self.badges = QLabel(wordWrap=True)
        self.badges.setTextFormat(Qt.TextFormat.RichText)
        explain = QLabel(
            "<b>Why GANs are hard</b><br>"
            + "<br>".join(f"• {EXPLANATIONS[k]}" for k in ("collapse", "equilibrium", "unstable")),
            wordWrap=True,
        )
        explain.setStyleSheet("color: palette(dark); font-size: 11px;")
        left_box = QGroupBox("Training")
        lb = QVBoxLayout(left_box)
        self.settings_tabs = QTabWidget()  # two short pages keep the default window usable
        run_page = QWidget()
        run_page.setLayout(form)
        self.settings_tabs.addTab(run_page, "Run")
        self.settings_tabs.addTab(self.loss_page, "Loss && stabilisers")
        lb.addWidget(self.settings_tabs)
        lb.addWidget(self.controls)
        compare_row = QHBoxLayout()
        compare_row.addWidget(self.compare)
        compare_row.addWidget(self.clear_runs_button)
        lb.addLayout(compare_row)
        lb.addWidget(self.judge_label)
        lb.addWidget(self.status)
        lb.addWidget(self.badges)
        lb.addStretch(1)
        lb.addWidget(explain)
        left_box.setFixedWidth(300)

        self.loss_plot = LivePlot("Losses", "the chosen loss")
        self.d_plot = LivePlot("D outputs", "probability")  # fits at 1280×720
        self.d_plot.set_y_range(0, 1)
        self.grad_plot = LivePlot("Gradient norms", "L2 norm")
        self.div_plot = LivePlot("Sample diversity", "mean pairwise L2")
        self.cover_plot = LivePlot("Classes covered", "of 10 (digit CNN)")
        self.cover_plot.set_y_range(0, 10.5)
        self.fid_plot = LivePlot("Fréchet distance", "to test digits (lower is better)")
        self._build_curves()
        plots = QGridLayout()
        for i, p in enumerate(
            (
                self.loss_plot,
                self.d_plot,
                self.grad_plot,
                self.div_plot,
                self.cover_plot,
                self.fid_plot,
            )
        ):
            plots.addWidget(p, i // 3, i % 3)

        self.samples = ImageView("Samples from fixed noise", "Press Train")
        self.class_pick = QComboBox()
        self.class_pick.addItem("all classes, one row each", -1)
        self.class_pick.setToolTip("A conditional generator: show 64 samples of one class")
        self.class_pick.setEnabled(False)
        self.class_pick.currentIndexChanged.connect(self.show_class)
        self.timelapse = QListWidget()
        self.timelapse.setViewMode(QListWidget.ViewMode.IconMode)
        self.timelapse.setFlow(QListWidget.Flow.LeftToRight)
        self.timelapse.setWrapping(False)
        self.timelapse.setIconSize(QSize(64, 64))
        self.timelapse.setFixedHeight(100)
        self.timelapse.setToolTip("How the fixed-noise samples changed during training")
        self.interpolation = ImageView("Latent interpolation", "After training")
        self.interpolation.picture.setMinimumSize(QSize(160, 60))  # a wide, short strip
        self.interpolation.setMaximumHeight(130)
        self.interp_button = QPushButton("Interpolate")
        self.interp_button.setToolTip("Walk in a straight line between two random latent vectors")
        self.save_button = QPushButton("Save generator…")
        self.grid_button = QPushButton("Export samples…")
        self.csv_button = QPushButton("Export metrics…")
        for b in (self.interp_button, self.save_button, self.grid_button, self.csv_button):
            set_enabled(b, False, NOT_TRAINED if b is not self.csv_button else NO_METRICS)
        self.interp_button.clicked.connect(self.interpolate)
        self.save_button.clicked.connect(
            lambda: self._export("generator", "Generator (*.pt)", self.save_generator)
        )
        self.grid_button.clicked.connect(
            lambda: self._export("samples", "PNG (*.png)", self.export_samples)
        )
        self.csv_button.clicked.connect(
            lambda: self._export("gan_metrics", "CSV (*.csv)", self.export_metrics)
        )
        right = QVBoxLayout()
        right.addWidget(self.samples, 3)
        right.addWidget(self.class_pick)
        right.addWidget(QLabel("Time-lapse"))
        right.addWidget(self.timelapse)
        right.addWidget(self.interpolation, 1)
        row = QHBoxLayout()
        for b in (self.interp_button, self.save_button):
            row.addWidget(b)
        right.addLayout(row)
        row2 = QHBoxLayout()
        for b in (self.grid_button, self.csv_button):
            row2.addWidget(b)
        right.addLayout(row2)
        right_w = QWidget()
        right_w.setLayout(right)
        right_w.setFixedWidth(330)

        self._show_judge()
        layout = QHBoxLayout(self)
        left_area = QScrollArea()  # the settings scroll rather than set the window's height
        left_area.setWidget(left_box)
        left_area.setWidgetResizable(True)
        left_area.setFrameShape(QScrollArea.Shape.NoFrame)
        left_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left_area.setFixedWidth(left_box.width() + 16)
        layout.addWidget(left_area)
        layout.addLayout(plots, 1)
        layout.addWidget(right_w)

    def _build_loss_controls(self) -> None:
        """The "Loss & stabilisers" page: the loss, TTUR presets, each stabiliser as a
        checkbox whose tooltip says which difficulty it targets, and conditioning."""
        self.loss = QComboBox()
        for key, name in LOSS_NAMES.items():
            self.loss.addItem(name, key)
            self.loss.setItemData(
                self.loss.count() - 1, LOSS_TIPS[key], Qt.ItemDataRole.ToolTipRole
            )
        self.loss.setToolTip("The GAN loss (the same formulas as the 2-D playground's)")
        self.gp_weight = QDoubleSpinBox(
            decimals=1, minimum=0.0, maximum=100.0, value=DEFAULTS.gp_weight
        )
        self.gp_weight.setToolTip(
            "WGAN-GP: weight λ of the gradient penalty (|∇D(x̂)| - 1)²; Gulrajani et al. use 10"
        )
        self.lr_preset = QComboBox()
        for key, (lr_g, lr_d) in LR_PRESETS.items():
            self.lr_preset.addItem(LR_PRESET_NAMES[key], key)  # the rates: its tooltip
            self.lr_preset.setItemData(
                self.lr_preset.count() - 1,
                f"lr G {lr_g:g}, lr D {lr_d:g}",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.lr_preset.addItem("custom", "custom")
        self.lr_preset.setItemData(
            self.lr_preset.count() - 1,
            "The rates set on the Run page",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.lr_preset.setToolTip(STABILISERS["ttur"])
        self.lr_preset.activated.connect(self._on_preset)
        self.spectral_norm = QCheckBox("Spectral norm in D")
        self.spectral_norm.setToolTip(STABILISERS["spectral_norm"])
        self.r1 = QCheckBox("R1 penalty, γ")
        self.r1.setToolTip(STABILISERS["r1"])
        self.r1_gamma = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=100.0, value=1.0)
        self.r1_gamma.setToolTip(STABILISERS["r1"])
        self.ema = QCheckBox("EMA of G, decay")
        self.ema.setToolTip(STABILISERS["ema"])
        self.ema.setChecked(DEFAULTS.ema_decay > 0)
        self.ema_decay = QDoubleSpinBox(
            decimals=4,
            minimum=0.5,
            maximum=0.9999,
            singleStep=0.001,
            value=DEFAULTS.ema_decay or 0.999,
        )
        self.ema_decay.setToolTip(STABILISERS["ema"])
        self.minibatch_std = QCheckBox("Minibatch std in D")
        self.minibatch_std.setToolTip(STABILISERS["minibatch_std"])
        self.conditional = QCheckBox("Class-conditional")
        self.conditional.setToolTip(
            "G draws the class you ask for (label embedding into G, "
            "projection discriminator), one class per class of the data set (a folder needs "
            "one sub-folder per class); samples show one row per class"
        )
        form = QFormLayout()
        form.addRow("Loss", self.loss)
        form.addRow("GP weight", self.gp_weight)
        form.addRow("Learning rates", self.lr_preset)
        form.addRow(self.spectral_norm)
        form.addRow(self.r1, self.r1_gamma)
        form.addRow(self.ema, self.ema_decay)
        form.addRow(self.minibatch_std)
        form.addRow(self.conditional)
        self.loss_page = QWidget()
        self.loss_page.setLayout(form)
        for w in (self.loss, self.arch):
            w.currentIndexChanged.connect(self._enable_loss_controls)
        for box in (self.r1, self.ema):
            box.toggled.connect(self._enable_loss_controls)
        for spin in (self.lr_g, self.lr_d):
            spin.valueChanged.connect(self._match_preset)
        self._enable_loss_controls()

    def _enable_loss_controls(self) -> None:
        bce = self.loss.currentData() in ("non-saturating", "minimax")
        dcgan = self.arch.currentData() == "dcgan"
        self.gp_weight.setEnabled(self.loss.currentData() == "wgan-gp")
        self.smoothing.setEnabled(bce)
        if not bce:
            self.smoothing.setValue(0.0)
        self.r1_gamma.setEnabled(self.r1.isChecked())
        self.ema_decay.setEnabled(self.ema.isChecked())
        self.width.setEnabled(dcgan)  # the MLP GAN's layers have fixed sizes
        for box in (self.minibatch_std, self.conditional):
            box.setEnabled(dcgan)
            if not dcgan:
                box.setChecked(False)

    def _on_preset(self) -> None:
        key = self.lr_preset.currentData()
        if key in LR_PRESETS:
            lr_g, lr_d = LR_PRESETS[key]
            self.lr_g.setValue(lr_g)
            self.lr_d.setValue(lr_d)

    def _match_preset(self) -> None:
        pair = (round(self.lr_g.value(), 6), round(self.lr_d.value(), 6))
        key = next((k for k, v in LR_PRESETS.items() if v == pair), "custom")
        self.lr_preset.setCurrentIndex(self.lr_preset.findData(key))

    def _on_data(self, dataset: str = "") -> None:
        """A new data set: the geometry it comes in as the default size and channels, and its
        judge."""
        dataset = dataset or self._dataset()
        grey = dataset in ("digits", "torchvision:mnist", "torchvision:fashion-mnist")
        size = 28 if grey else 64 if dataset.startswith("imagenet-folder:") else 32
        self.image_size.setCurrentIndex(self.image_size.findData(size))
        self.channels.setCurrentIndex(self.channels.findData(1 if grey else 3))
        self.status.setText(
            "Trains on the 4,000 bundled digits."
            if dataset == "digits"
            else f"Trains on {self.picker.info.text() or dataset}."
        )
        self._show_judge()

    def use_folder(self, folder: str) -> None:
        """Train on the images under ``folder`` (as chosen in the dialog)."""
        self.picker.use_folder(folder)
        self._on_data(f"folder:{folder}")

    def _dataset(self) -> str:
        try:
            return self.picker.dataset()
        except ConfigError:
            return ""

    def judge_choice(self) -> tuple[str, str]:
        """(the config's judge, the line saying which it is or why there is none)."""
        from advstudio.core.gan.judge import window_judge

        dataset = self._dataset()
        if not dataset:
            return "auto", "Judge: chosen when the data set is."
        return window_judge(dataset, self.state.model_key, self.state.model)

    def _show_judge(self) -> None:
        self.judge_label.setText(self.judge_choice()[1])

    # -- running ------------------------------------------------------------------------------
    def config(self) -> GanConfig:
        dataset = self.picker.dataset()
        judge = self.judge_choice()[0]
        return GanConfig(
            arch=self.arch.currentData(),
            latent_dim=self.latent.value(),
            dataset=dataset,
            image_size=self.image_size.currentData(),
            channels=self.channels.currentData(),
            batch_size=self.batch.value(),
            width=self.width.value(),
            steps=self.steps.value(),
            lr_g=self.lr_g.value(),
            lr_d=self.lr_d.value(),
            d_steps=self.d_steps.value(),
            label_smoothing=self.smoothing.value(),
            loss=self.loss.currentData(),
            gp_weight=self.gp_weight.value(),
            spectral_norm=self.spectral_norm.isChecked(),
            r1_gamma=self.r1_gamma.value() if self.r1.isChecked() else 0.0,
            ema_decay=self.ema_decay.value() if self.ema.isChecked() else 0.0,
            minibatch_std=self.minibatch_std.isChecked(),
            conditional=self.conditional.isChecked(),
            eval_every=self.eval_every.value(),
            judge=judge,
            judge_card=self.state.model_card if judge == self.state.model_key else None,
            seed=self.seed.value(),
            device=self.state.device,
        )

    def job_config(self) -> tuple[str, GanConfig]:
        """(kind, config) of the job Train would start (File ▸ Export job as config)."""
        return "gan", self.config()

    @property
    def running(self) -> bool:
        return self.job.busy

    def start(self) -> JobWorker | None:
        from advstudio.core.gan.train import train_gan

        if self.running:
            return None
        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        for key, value in (
            ("arch", config.arch),
            ("steps", config.steps),
            ("batch", config.batch_size),
            ("width", config.width),
        ):
            self.settings.setValue(f"gan/{key}", value)
        entry = self._new_run(config)
        # the window's open model judges when it is the judge (no second load)
        judge = self.state.model if config.judge == self.state.model_key else None

        def connect(w: JobWorker) -> None:
            w.metrics.connect(lambda m: self._on_metrics(m, entry))
            w.preview.connect(self._on_preview)
            w.log.connect(self.status.setText)
            w.returned.connect(lambda r: self._on_done(r, entry))
            w.errored.connect(lambda _exc: self._drop_if_empty(entry))
            w.aborted.connect(
                lambda: self.status.setText(
                    f"Stopped at step {self.diagnostics.step}; the curves so far are kept."
                )
            )
            w.finished.connect(self._on_finished)

        return self.controls.attach(
            self.job.start(
                lambda: train_gan(config, judge=judge),
                f"Training {config.arch.upper()}"
                + (f" (run {entry['label']})" if entry["compared"] else ""),
                "GAN training failed",
                connect=connect,
                # recorded runs build the job as run(config): the judge travels with it
                record=("gan", config, functools.partial(train_gan, judge=judge)),
            )
        )

    def _plots(self) -> tuple[LivePlot, ...]:
        return (
            self.loss_plot,
            self.d_plot,
            self.grad_plot,
            self.div_plot,
            self.cover_plot,
            self.fid_plot,
        )

    @staticmethod
    def describe(config: GanConfig) -> str:
        """A run's configuration in a few words, for the legends: loss, stabilisers and what
        differs from the DCGAN defaults (e.g. ``"hinge, SN, EMA, TTUR"``)."""
        parts = [LOSS_SHORT[config.loss] + (f" ×{config.d_steps}" if config.d_steps > 1 else "")]
        if config.arch == "gan":
            parts.insert(0, "MLP")
        for on, word in (
            (config.spectral_norm, "SN"),
            (config.r1_gamma, f"R1 {config.r1_gamma:g}"),
            (config.ema_decay, "EMA"),
            (config.minibatch_std, "mb-std"),
            (config.conditional, "cond."),
            (config.label_smoothing, f"smooth {config.label_smoothing:g}"),
        ):
            if on:
                parts.append(word)
        if (config.lr_g, config.lr_d) != (DEFAULTS.lr_g, DEFAULTS.lr_d):
            parts.append(f"lr {config.lr_g:g}/{config.lr_d:g}")
        if config.batch_size != DEFAULTS.batch_size:
            parts.append(f"batch {config.batch_size}")
        if config.width != DEFAULTS.width and config.arch == "dcgan":
            parts.append(f"width {config.width}")
        return ", ".join(parts)

    def _new_run(self, config: GanConfig) -> dict:
        """The run about to start: alone on fresh plots, or added to the kept runs."""
        compared = self.compare.isChecked()
        if not compared:
            self.runs.clear()
        index = len(self.runs) + 1
        entry = {
            "index": index,
            "label": f"{index}: {self.describe(config)}",
            "colour": RUN_COLOURS[(index - 1) % len(RUN_COLOURS)],
            "config": config,
            "rows": [],
            "result": None,
            "compared": compared,
        }
        self.runs.append(entry)
        for run in self.runs:  # a comparison names every run, the earlier ones too
            run["compared"] = compared
        self._reset(config.loss)
        # sigmoid(D) is a probability only for the BCE losses: LSGAN, hinge and a WGAN
        # critic are read by their raw outputs (as the badges read them)
        self.d_raw = any(run["config"].loss not in BCE_LOSSES for run in self.runs)
        if self.d_raw:
            self.d_plot.plot.setLabel("left", "D's raw output")
            self.d_plot.follow_y_range()
        else:
            self.d_plot.plot.setLabel("left", "probability")
            self.d_plot.set_y_range(0, 1)
        self.rows = entry["rows"]
        self._build_curves()
        for run in self.runs[:-1]:
            for row in run["rows"]:
                self._feed(run, int(row["step"]), row)
        steps = max(run["config"].steps for run in self.runs)
        for p in self._plots():
            p.set_x_extent(0, steps)
        self._set_judge_axis(config)
        return entry

    def _set_judge_axis(self, config: GanConfig) -> None:
        from advstudio.core.gan.judge import dataset_classes

        k = len(dataset_classes(config.dataset)) or 10
        self.cover_plot.plot.setLabel("left", f"of {k} (the judge)")
        self.cover_plot.set_y_range(0, k + 0.5)
        self.fid_plot.plot.setLabel("left", "to real images (lower is better)")

    def _build_curves(self) -> None:
        """Every plot's curves: one run's as ever, or each compared run's in its colour (solid
        D, dashed G; one legend entry a run, naming its configuration)."""
        for p in self._plots():
            p.remove_curves()
        if not self.runs or not self.runs[0]["compared"]:
            for name, colour in (("loss_d", D_COLOUR), ("loss_g", G_COLOUR)):
                self.loss_plot.add_curve(name, (*colour, 70))
                self.loss_plot.add_curve(f"{name} (smoothed)", colour, width=2, smooth_of=name)
            self.d_plot.add_curve("D(x)", D_COLOUR)
            self.d_plot.add_curve("D(G(z)) before G step", G_COLOUR)
            if not self.d_raw:  # the step measures it as a probability only
                self.d_plot.add_curve("D(G(z)) after G step", (255, 127, 14))
            self.grad_plot.add_curve("grad D", D_COLOUR)
            self.grad_plot.add_curve("grad G", G_COLOUR)
            self.div_plot.add_curve("batch", (120, 120, 120))
            self.div_plot.add_curve("smoothed", (44, 160, 44), width=2, smooth_of="batch")
            self.cover_plot.add_curve("classes", (148, 103, 189), width=2, symbol="o")
            self.fid_plot.add_curve("Fréchet", (140, 86, 75), width=2, symbol="o")
            return
        dash = Qt.PenStyle.DashLine
        for run in self.runs:
            label, c = run["label"], run["colour"]
            for q, style in (("D", None), ("G", dash)):
                self.loss_plot.add_curve(f"{label} loss {q} raw", (*c, 35), legend="")
                self.loss_plot.add_curve(
                    f"{label} loss {q}",
                    c,
                    width=2,
                    style=style,
                    smooth_of=f"{label} loss {q} raw",
                    legend=label if q == "D" else "",
                )
                self.grad_plot.add_curve(
                    f"{label} grad {q}", c, style=style, legend=label if q == "D" else ""
                )
            self.d_plot.add_curve(f"{label} D(x)", c, legend=label)
            self.d_plot.add_curve(f"{label} D(G(z))", c, style=dash, legend="")
            self.div_plot.add_curve(f"{label} batch", (*c, 35), legend="")
            self.div_plot.add_curve(
                f"{label} diversity", c, width=2, smooth_of=f"{label} batch", legend=label
            )
            self.cover_plot.add_curve(f"{label} classes", c, width=2, symbol="o", legend=label)
            self.fid_plot.add_curve(f"{label} Fréchet", c, width=2, symbol="o", legend=label)

    def _drop_if_empty(self, entry: dict) -> None:
        """A run that failed before its first step leaves no legend entry behind."""
        if not entry["rows"] and entry in self.runs:
            self.runs.remove(entry)
            self._build_curves()
            for run in self.runs:
                for row in run["rows"]:
                    self._feed(run, int(row["step"]), row)

    def clear_runs(self) -> None:
        """Forget the kept runs: empty plots (not while a run trains)."""
        if self.running:
            return
        self.runs.clear()
        self._build_curves()

    def _reset(self, loss: str) -> None:
        self.rows = []
        self.result = None
        self.diagnostics = GanDiagnostics(loss)
        self.class_pick.setCurrentIndex(0)
        self.class_pick.setEnabled(False)
        self._frames = 0
        self.timelapse.clear()
        self.badges.setText("")
        for p in self._plots():
            p.clear()
        for b in (self.interp_button, self.save_button, self.grid_button, self.csv_button):
            set_enabled(b, False, TRAINING)

    def toggle_pause(self) -> None:
        self.controls.toggle_pause()

    def stop(self) -> None:
        self.controls.stop()

    def _feed(self, run: dict, step: int, v: dict) -> None:
        """One metrics row of ``run`` onto the plots."""
        if not run["compared"]:
            if "loss_d" in v:
                self.loss_plot.add("loss_d", step, v["loss_d"])
                self.loss_plot.add("loss_g", step, v["loss_g"])
                real, fake = ("out_real", "out_fake") if self.d_raw else ("d_x", "d_g_z1")
                self.d_plot.add("D(x)", step, v[real])
                self.d_plot.add("D(G(z)) before G step", step, v[fake])
                if not self.d_raw:
                    self.d_plot.add("D(G(z)) after G step", step, v["d_g_z2"])
                self.grad_plot.add("grad D", step, v["grad_norm_d"])
                self.grad_plot.add("grad G", step, v["grad_norm_g"])
                self.div_plot.add("batch", step, v["diversity"])
            if "classes_covered" in v:
                self.cover_plot.add("classes", step, v["classes_covered"])
            if "frechet" in v:
                self.fid_plot.add("Fréchet", step, v["frechet"])
            return
        label = run["label"]
        if "loss_d" in v:
            self.loss_plot.add(f"{label} loss D raw", step, v["loss_d"])
            self.loss_plot.add(f"{label} loss G raw", step, v["loss_g"])
            real, fake = ("out_real", "out_fake") if self.d_raw else ("d_x", "d_g_z1")
            self.d_plot.add(f"{label} D(x)", step, v[real])
            self.d_plot.add(f"{label} D(G(z))", step, v[fake])
            self.grad_plot.add(f"{label} grad D", step, v["grad_norm_d"])
            self.grad_plot.add(f"{label} grad G", step, v["grad_norm_g"])
            self.div_plot.add(f"{label} batch", step, v["diversity"])
        if "classes_covered" in v:
            self.cover_plot.add(f"{label} classes", step, v["classes_covered"])
        if "frechet" in v:
            self.fid_plot.add(f"{label} Fréchet", step, v["frechet"])

    def _on_metrics(self, m, run: dict | None = None) -> None:
        run = run or (self.runs[-1] if self.runs else None)
        v, step = m.values, m.step
        self.rows.append({"step": step, **v})
        self.diagnostics.update(step, v)
        if run is not None:
            self._feed(run, step, v)
        if "loss_d" in v and step % 25 == 0:
            self._show_findings()
        if "frechet" in v:
            covered = (
                f"{v['classes_covered']:.0f} classes covered (class entropy "
                f"{v['class_entropy']:.2f}), "
                if "classes_covered" in v
                else ""
            )
            self.status.setText(f"step {step}: {covered}Fréchet {v['frechet']:.0f}")
            self._show_findings()

    def _show_findings(self) -> None:
        colours = {"warning": "#b35806", "info": "#2166ac"}
        self.badges.setText(
            "<br>".join(
                f"<span style='color:{colours[f.severity]}'>● {f.message}</span>"
                for f in self.diagnostics.findings()
            )
        )

    def _on_preview(self, preview) -> None:
        if preview.name != "samples":
            return
        self.samples.set_pixels(preview.data, f"Samples at step {self.diagnostics.step}")
        total = max(1, self.steps.value())
        if self.diagnostics.step >= self._frames * total / TIMELAPSE_FRAMES:
            self._frames += 1
            icon = QIcon(QPixmap.fromImage(array_to_qimage(preview.data)))
            self.timelapse.addItem(QListWidgetItem(icon, f"{self.diagnostics.step}"))
            self.timelapse.scrollToBottom()

    def _on_done(self, result, run: dict | None = None) -> None:
        self.result = result
        if run is not None:
            run["result"] = result
        self.samples.set_pixels(result.samples, f"Samples at step {result.step}")
        ev = result.evaluation
        text = f"Done: {result.step} steps."
        k = len(result.class_names) or 10
        if "classes_covered" in ev:
            text += (
                f" {ev['classes_covered']:.0f} of {k} classes covered, "
                f"Fréchet {ev['frechet']:.0f} (judge: {result.judge})."
            )
        elif ev:
            text += f" Fréchet {ev['frechet']:.0f} (features of {result.judge})."
        elif result.judge_note and result.config.eval_every:
            text += " Not judged: " + result.judge_note.rstrip(".") + "."
        if "class_accuracy" in ev:
            text += f" The judge reads {100 * ev['class_accuracy']:.0f} % as the class asked for."
        if run is not None and run["compared"]:
            text += " " + " · ".join(self._run_summary(r) for r in self.runs if r["result"])
        self.status.setText(text)
        for b in (self.interp_button, self.save_button, self.grid_button):
            set_enabled(b, True)
        self.class_pick.blockSignals(True)
        while self.class_pick.count() > 1:
            self.class_pick.removeItem(1)
        names = result.class_names or [str(i) for i in range(result.config.num_classes)]
        if result.config.conditional:
            for i, name in enumerate(names[: result.config.num_classes]):
                self.class_pick.addItem(f"class {i}: {name}" if name != str(i) else f"class {i}", i)
        self.class_pick.blockSignals(False)
        self.class_pick.setEnabled(result.config.conditional)
        self.trained.emit(result)

    @staticmethod
    def _run_summary(run: dict) -> str:
        ev = run["result"].evaluation
        if not ev:
            return f"run {run['label']}: not judged"
        covered = f"{ev['classes_covered']:.0f} classes, " if "classes_covered" in ev else ""
        return f"run {run['label']}: {covered}Fréchet {ev['frechet']:.0f}"

    def _on_finished(self) -> None:
        set_enabled(self.csv_button, bool(self.rows), NO_METRICS)
        if self.result is None:  # stopped or failed: no generator came back
            for b in (self.interp_button, self.save_button, self.grid_button):
                set_enabled(b, False, STOPPED)
        for p in self._plots():
            p.redraw()

    # -- after training -----------------------------------------------------------------------
    def generator(self):
        from advstudio.core.gan.networks import build_networks, network_options

        c = self.result.config
        generator, _ = build_networks(
            c.arch, c.latent_dim, channels=c.channels, image_size=c.image_size, **network_options(c)
        )
        generator.load_state_dict(self.result.generator_state)
        return generator.eval()

    def show_class(self) -> np.ndarray | None:
        """The picked class's 64 samples (or the result's grid, one row per class)."""
        from advstudio.core.gan.sampling import class_samples, sample_grid

        k = self.class_pick.currentData()
        if self.result is None or not self.result.config.conditional:
            return None
        if k < 0:
            grid = self.result.samples
        else:
            c = self.result.config
            grid = sample_grid(class_samples(self.generator(), c.latent_dim, k, seed=c.seed + 2))
        self.samples.set_pixels(grid, "All classes" if k < 0 else f"Samples of class {k}")
        return grid

    def interpolate(self) -> np.ndarray | None:
        """A row of 10 images from one random latent vector to another (cheap: G forward only)."""
        import torch

        from advstudio.core.gan.sampling import interpolate, sample_grid

        if self.result is None:
            return None
        gen = torch.Generator().manual_seed(int(np.random.default_rng().integers(2**31)))
        z0, z1 = torch.randn(2, self.result.config.latent_dim, generator=gen)
        label = self.class_pick.currentData() if self.result.config.conditional else None
        label = 0 if label is not None and label < 0 else label
        row = sample_grid(interpolate(self.generator(), z0, z1, n=10, label=label), nrow=10)
        self.interpolation.set_pixels(row, "Latent interpolation")
        return row

    def _export(self, stem: str, file_filter: str, save) -> None:
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        suffix = file_filter.split("*")[1].rstrip(")")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export", str(start / f"{stem}{suffix}"), file_filter
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            save(Path(path))

    def save_generator(self, path: Path) -> Path:
        """The generator's state_dict plus its geometry, loadable with ``weights_only=True``."""
        from advstudio.core.atomic import atomic_torch_save

        c = self.result.config
        payload = {
            "state_dict": self.result.generator_state,
            "meta": {
                "arch": c.arch,
                "latent_dim": c.latent_dim,
                "image_size": c.image_size,
                "channels": c.channels,
                "num_classes": c.num_classes if c.conditional else 0,
                "width": c.width,
            },
        }
        atomic_torch_save(payload, path)
        self.status.setText(f"Saved the generator to {path.name}.")
        return path

    def export_samples(self, path: Path) -> Path:
        from advstudio.core.images import save_png

        grid = self.result.samples
        return save_png(grid[..., None] if grid.ndim == 2 else grid, path)

    def export_metrics(self, path: Path) -> Path:
        keys = sorted({k for row in self.rows for k in row} - {"step"})
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["step", *keys])
            writer.writeheader()
            writer.writerows(self.rows)
        return path


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(GanTab)
