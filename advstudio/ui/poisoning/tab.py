"""Poisoning tab: poison the training digits (label flips, a BadNets backdoor, adversarial
examples), train the victim, and measure the damage, with or without a defence.

Live: a preview of a poisoned sample with the trigger as designed, the victim's loss, clean
accuracy and attack success per epoch, a gallery of the poisoned samples, and a sweep over the
poison fraction.

Run alone: ``python -m advstudio.ui.poisoning.tab``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.state import AppState
from advstudio.ui.widgets.arch_combo import fill_archs
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.live_plot import LivePlot
from advstudio.ui.widgets.run_controls import RunControls
from advstudio.workers import JobManager, JobWorker

ATTACKS = [
    ("backdoor", "Backdoor (BadNets trigger)"),
    ("label-flip", "Label flipping"),
    ("adversarial", "Adversarial examples"),
    ("none", "No poison (baseline)"),
]
DEFENCES = [
    ("none", "None"),
    ("sanitize", "Sanitise the data"),
    ("adversarial-training", "Adversarial training (FGSM)"),
]
FRACTION_STEPS = 1000  # slider units per fraction 1.0 (0.1 % resolution)


def _grid(images: np.ndarray, ncol: int = 8) -> np.ndarray:
    """(n, H, W) or (n, H, W, C) in [0, 1] -> one (rows*H, ncol*W[, C]) image with 1-px gaps."""
    n, h, w = images.shape[:3]
    rows = -(-n // ncol)
    shape = (rows * (h + 1) - 1, ncol * (w + 1) - 1) + images.shape[3:]
    out = np.full(shape, 0.35, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = img
    return out


class PoisoningTab(QWidget):
    run_done = Signal(object)  # PoisonResult
    sweep_done = Signal(object)  # PoisonCurve

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
        self.result = None
        self.curve = None
        self._sample = None
        self.geometry = ((1, 28, 28), 10)  # (C, H, W) and classes the victim sees
        self._known = None  # the chosen set's, when known (folders: from their first image)
        self._build()
        self.update_preview()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.attack = QComboBox()
        for key, text in ATTACKS:
            self.attack.addItem(text, key)
        self.fraction_slider = QSlider(
            Qt.Orientation.Horizontal, minimum=0, maximum=FRACTION_STEPS // 2
        )
        self.fraction = QDoubleSpinBox(
            decimals=1, minimum=0.0, maximum=100.0, singleStep=0.5, suffix=" %", value=5.0
        )
        self.fraction.setToolTip(
            "Share of the pool (the source class, or all training digits) that is poisoned"
        )
        self.source = QComboBox()
        self.source.addItem("all classes", -1)
        self.target = QComboBox()
        for c in range(10):
            self.source.addItem(str(c), c)
            self.target.addItem(str(c), c)
        self.flip = QComboBox()
        self.flip.addItem("random other class", "random")
        self.flip.addItem("the target class", "targeted")
        self.size = QSpinBox(minimum=1, maximum=28, value=3)
        self.row = QSpinBox(minimum=0, maximum=27, value=24)
        self.col = QSpinBox(minimum=0, maximum=27, value=24)
        self.pattern = QComboBox()
        self.pattern.addItems(["square", "checker"])
        self.adv_attack = QComboBox()
        self.adv_attack.addItems(["fgsm", "pgd"])
        self.adv_eps = QDoubleSpinBox(
            decimals=3, minimum=0.001, maximum=1.0, singleStep=0.05, value=0.1
        )
        self.defence = QComboBox()
        for key, text in DEFENCES:
            self.defence.addItem(text, key)
        self.defence.setItemData(
            self.defence.findData("sanitize"),
            "Sanitise the data: drop the training points that stand out by loss, "
            "k-NN label disagreement or activation clusters",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.epochs = QSpinBox(minimum=1, maximum=100, value=3)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.data = DatasetPicker(self.settings, imagenet=False)
        self.data.setToolTip(
            "The victim trains at the set's own shape and colour (the digit networks take "
            "grey sets, resized to 28×28); the trigger is stamped in every channel"
        )
        self.arch = QComboBox()
        self.arch.setToolTip("The victim network: those that fit the chosen data set")
        fill_archs(self.arch, ["digits-cnn", "digits-mlp", "small-cnn"])
        self.form = QFormLayout()
        self.rows = {}
        frac_row = QHBoxLayout()
        frac_row.addWidget(self.fraction_slider, 1)
        frac_row.addWidget(self.fraction)
        frac_w = QWidget()
        frac_w.setLayout(frac_row)
        frac_row.setContentsMargins(0, 0, 0, 0)
        for name, label, w in (
            ("data", "Data", self.data),
            ("arch", "Victim network", self.arch),
            ("attack", "Attack", self.attack),
            ("fraction", "Poison", frac_w),
            ("source", "Source class", self.source),
            ("target", "Target class", self.target),
            ("flip", "Flip to", self.flip),
            ("size", "Trigger size", self.size),
            ("row", "Trigger row", self.row),
            ("col", "Trigger col", self.col),
            ("pattern", "Pattern", self.pattern),
            ("adv_attack", "Adversarial attack", self.adv_attack),
            ("adv_eps", "ε (L∞)", self.adv_eps),
            ("defence", "Defence", self.defence),
            ("epochs", "Victim epochs", self.epochs),
            ("seed", "Seed", self.seed),
        ):
            self.form.addRow(label, w)
            self.rows[name] = w
        self.preview = ImageView("A poisoned training sample", "")
        self.preview.setFixedHeight(190)
        self.controls = RunControls("Poison and train")
        self.run_button = self.controls.start_button
        self.stop_button = self.controls.stop_button
        self.fractions = QLineEdit(
            str(self.settings.value("poison/fractions", "0, 0.01, 0.05, 0.1"))
        )
        self.fractions.setToolTip("Poison fractions to sweep (0 = the clean baseline)")
        self.sweep_button = QPushButton("Sweep fractions")
        self.run_button.clicked.connect(self.start)
        self.sweep_button.clicked.connect(self.start_sweep)
        sweep_row = QHBoxLayout()
        sweep_row.addWidget(self.fractions, 1)
        sweep_row.addWidget(self.sweep_button)
        self.status = QLabel(wordWrap=True)
        self.job = JobOwner(self, self.jobs, self.status)
        box = QGroupBox("Poisoning")
        bl = QVBoxLayout(box)
        bl.addLayout(self.form)
        bl.addWidget(self.preview)
        bl.addWidget(self.controls)
        bl.addLayout(sweep_row)
        bl.addWidget(self.status)
        bl.addStretch(1)
        box.setFixedWidth(340)

        self.loss_plot = LivePlot("Victim training loss", "loss")
        self.loss_plot.add_curve("loss", (150, 150, 150))
        self.loss_plot.add_curve("smoothed", (31, 119, 180), width=2, smooth_of="loss")
        self.epoch_plot = LivePlot("Victim per epoch", "share of test digits", x_label="epoch")
        self.epoch_plot.add_curve("clean accuracy", (44, 160, 44), width=2, symbol="o")
        self.epoch_plot.add_curve("attack success", (214, 39, 40), width=2, symbol="t")
        self.epoch_plot.set_y_range(0, 1.02)
        self.sweep_plot = LivePlot(
            "Damage vs poison fraction", "share of test digits", x_label="poison fraction"
        )
        self.sweep_plot.add_curve("clean accuracy", (44, 160, 44), width=2, symbol="o")
        self.sweep_plot.add_curve("attack success", (214, 39, 40), width=2, symbol="t")
        self.sweep_plot.set_y_range(0, 1.02)
        self.gallery = ImageView("Poisoned samples (clean → poisoned label)", "Run to see them")
        # the gallery's word-wrapped caption makes its row ask for its preferred height, which
        # squeezed the victim plots above to 150 px at 1280×720 (the per-epoch plot's y labels
        # on top of each other): they keep room for a view under their title and legend
        for p in (self.loss_plot, self.epoch_plot):
            p.setMinimumHeight(230)
        plots = QVBoxLayout()
        top = QHBoxLayout()
        top.addWidget(self.loss_plot, 1)
        top.addWidget(self.epoch_plot, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.sweep_plot, 1)
        bottom.addWidget(self.gallery, 1)
        plots.addLayout(top, 1)
        plots.addLayout(bottom, 1)
        controls_area = QScrollArea()  # the settings scroll rather than set the window's height
        controls_area.setWidget(box)
        controls_area.setWidgetResizable(True)
        controls_area.setFrameShape(QScrollArea.Shape.NoFrame)
        controls_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls_area.setFixedWidth(box.width() + 16)
        layout = QHBoxLayout(self)
        layout.addWidget(controls_area)
        layout.addLayout(plots, 1)

        self.fraction_slider.valueChanged.connect(
            lambda v: self.fraction.setValue(100 * v / FRACTION_STEPS)
        )
        self.fraction.valueChanged.connect(self._on_fraction)
        for w in (self.attack, self.pattern, self.source, self.target, self.flip):
            w.currentIndexChanged.connect(self._update_fields)
        for w in (self.size, self.row, self.col):
            w.valueChanged.connect(self.update_preview)
        self.data.changed.connect(self._on_data_changed)
        self.arch.currentIndexChanged.connect(lambda _: self._apply_geometry())
        self._on_fraction(self.fraction.value())
        self._update_fields()

    def _on_data_changed(self, dataset: str) -> None:
        """Offer the victims that fit the set, then :meth:`_apply_geometry`."""
        from advstudio.core.defence.defaults import archs_for, probe_geometry

        self._known = probe_geometry(dataset)
        shape, classes = self._known or (None, None)
        fill_archs(self.arch, archs_for(dataset, shape, classes))
        self._apply_geometry()

    def _apply_geometry(self) -> None:
        """The set's classes and the victim's image size bound the class and trigger fields,
        and the preview shows the trigger at the victim's shape."""
        from advstudio.core.models.names import DIGIT_ARCHITECTURES

        known = getattr(self, "_known", None)
        if self.arch.currentData() in DIGIT_ARCHITECTURES:
            known = ((1, 28, 28), 10)
        geometry = known or ((3, 32, 32), 10)
        if geometry == self.geometry:
            return
        self.geometry = geometry
        (c, h, w), classes = geometry
        for combo, first in ((self.source, 1), (self.target, 0)):
            current = combo.currentData()
            combo.blockSignals(True)
            for i in range(combo.count() - 1, first - 1, -1):
                combo.removeItem(i)
            for k in range(classes):
                combo.addItem(str(k), k)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)
        self.size.setMaximum(min(h, w))
        self.row.setMaximum(h - 1)
        self.col.setMaximum(w - 1)
        self._sample = None
        self.update_preview()

    def _on_fraction(self, percent: float) -> None:
        self.fraction_slider.blockSignals(True)
        self.fraction_slider.setValue(round(percent / 100 * FRACTION_STEPS))
        self.fraction_slider.blockSignals(False)

    def _update_fields(self) -> None:
        attack = self.attack.currentData()
        show = {"data", "attack", "defence", "epochs", "seed"}
        if attack != "none":
            show |= {"fraction", "source"}
        if attack == "backdoor":
            show |= {"target", "size", "row", "col", "pattern"}
        elif attack == "label-flip":
            show |= {"flip"} | ({"target"} if self.flip.currentData() == "targeted" else set())
        elif attack == "adversarial":
            show |= {"adv_attack", "adv_eps"}
        for name, w in self.rows.items():
            self.form.setRowVisible(w, name in show)
        self.update_preview()

    # -- config and preview -------------------------------------------------------------------
    def config(self, **overrides):
        from advstudio.core.poisoning.job import PoisonConfig

        values = dict(
            attack=self.attack.currentData(),
            fraction=self.fraction.value() / 100,
            source=self.source.currentData(),
            target=self.target.currentData(),
            flip=self.flip.currentData(),
            trigger_size=self.size.value(),
            trigger_row=self.row.value(),
            trigger_col=self.col.value(),
            trigger_pattern=self.pattern.currentText(),
            adv_attack=self.adv_attack.currentText(),
            adv_eps=self.adv_eps.value(),
            defence=self.defence.currentData(),
            epochs=self.epochs.value(),
            seed=self.seed.value(),
            device=self.state.device,
            dataset=self.data.dataset(),
            arch=self.arch.currentData(),
        )
        values.update(overrides)
        return PoisonConfig(**values)

    def job_config(self):
        """(kind, config) of the job Run would start (File ▸ Export job as config)."""
        return "poison", self.config()

    def update_preview(self) -> None:
        """A test digit as the victim would see it poisoned (trigger stamped live)."""
        import torch

        from advstudio.core.data import load_digits
        from advstudio.core.poisoning.triggers import Trigger

        if self._sample is None and self.geometry[0] == (1, 28, 28):
            x, y = load_digits("test")
            self._sample = x[int(torch.nonzero(y == 7)[0])]
        elif self._sample is None:  # another shape: a mid-grey image of it
            self._sample = torch.full(self.geometry[0], 0.5)
        attack = self.attack.currentData()
        if attack != "backdoor":
            self.preview.set_pixels(
                self._sample.permute(1, 2, 0).numpy(), "Trigger: only for the backdoor"
            )
            return
        try:
            trigger = Trigger(
                self.size.value(), self.row.value(), self.col.value(), self.pattern.currentText()
            )
            stamped = trigger.stamp(self._sample)
        except ConfigError as exc:
            self.preview.set_pixels(None, str(exc))
            self.status.setText(str(exc))
            return
        self.status.setText("")
        self.preview.set_pixels(
            stamped.permute(1, 2, 0).numpy(), f"labelled {self.target.currentData()} in training"
        )

    # -- running ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job.busy

    def _begin(self) -> None:
        self.sweep_button.setEnabled(False)  # RunControls handles Train, Pause and Stop

    def _finished(self) -> None:
        self.sweep_button.setEnabled(True)
        for p in (self.loss_plot, self.epoch_plot, self.sweep_plot):
            p.redraw()

    def start(self) -> JobWorker | None:
        from advstudio.core.poisoning.job import run_poisoning

        if self.running:
            return None
        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        self.loss_plot.clear()
        self.epoch_plot.clear()
        self.epoch_plot.set_x_extent(1, max(2, config.epochs))  # the axis stays still
        self.result = None
        epoch = [0]

        def on_metrics(m) -> None:
            v = m.values
            if "loss" in v:
                self.loss_plot.add("loss", m.step, v["loss"])
            if "clean_acc" in v:
                epoch[0] += 1
                self.epoch_plot.add("clean accuracy", epoch[0], v["clean_acc"])
                if "attack_success" in v:
                    self.epoch_plot.add("attack success", epoch[0], v["attack_success"])

        def connect(w: JobWorker) -> None:
            w.metrics.connect(on_metrics)
            w.preview.connect(self._on_preview)
            w.log.connect(self.status.setText)
            w.returned.connect(self._on_result)
            w.aborted.connect(lambda: self.status.setText("Stopped; the curves so far are kept."))
            w.finished.connect(self._finished)

        self._begin()
        return self.controls.attach(
            self.job.start(
                lambda: run_poisoning(config),
                f"Poisoning: {config.attack}",
                "Poisoning failed",
                connect=connect,
                record=("poison", config),
            )
        )

    def start_sweep(self) -> JobWorker | None:
        from advstudio.core.poisoning.job import run_fraction_sweep

        if self.running:
            return None
        try:
            fractions = [
                float(f) for f in self.fractions.text().replace(";", ",").split(",") if f.strip()
            ]
            config = self.config(fraction=max([f for f in fractions if f > 0], default=0.05))
        except (ValueError, ConfigError) as exc:
            self.status.setText(f"Check the fractions: {exc}")
            return None
        self.settings.setValue("poison/fractions", self.fractions.text())
        self.sweep_plot.clear()
        self.curve = None

        def on_metrics(m) -> None:
            v = m.values
            self.sweep_plot.add("clean accuracy", v["fraction"], v["clean_acc"])
            if "attack_success" in v:
                self.sweep_plot.add("attack success", v["fraction"], v["attack_success"])

        def done(curve) -> None:
            self.curve = curve
            self.status.setText(
                "Sweep done: "
                + "; ".join(
                    f"{f * 100:g} %: clean {c * 100:.1f} %"
                    + (f", success {s * 100:.1f} %" if s == s else "")
                    for f, c, s in zip(curve.fractions, curve.clean_acc, curve.attack_success)
                )
            )
            self.sweep_done.emit(curve)

        def connect(w: JobWorker) -> None:
            w.metrics.connect(on_metrics)
            w.log.connect(self.status.setText)
            w.returned.connect(done)
            w.finished.connect(self._finished)

        self._begin()
        return self.controls.attach(
            self.job.start(
                lambda: run_fraction_sweep(config, fractions),
                "Poison fraction sweep",
                "Poisoning failed",
                connect=connect,
            )
        )

    def stop(self) -> None:
        self.controls.stop()

    def _on_preview(self, preview) -> None:
        if preview.name == "poisoned" and len(preview.data):
            self.gallery.set_pixels(_grid(np.asarray(preview.data)))
        elif preview.name == "poisoned_labels":
            pairs = ", ".join(f"{a}→{b}" for a, b in np.asarray(preview.data)[:8])
            self.gallery.caption.setText(f"Poisoned samples (clean → poisoned label): {pairs}…")

    def _on_result(self, result) -> None:
        self.result = result
        text = (
            f"Victim: clean accuracy {result.clean_acc * 100:.1f} %"
            + (
                f", attack success {result.attack_success * 100:.1f} %"
                if result.attack_success == result.attack_success
                else ""
            )
            + f"; {result.n_poisoned} training digits poisoned, the victim trained on "
            f"{result.n_train}"
        )
        if result.sanitize is not None:
            s = result.sanitize
            text += (
                f"; the sanitiser found {s.found} poisoned and dropped {s.dropped_clean} "
                f"clean digits"
            )
        self.status.setText(text + f" ({result.seconds:.0f} s).")
        self.run_done.emit(result)


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(PoisoningTab)
