"""Epsilon sweep: accuracy (solid) and attack success (dashed) against eps for several attacks,
over the chosen data set (the bundled test digits by default), as a job with live points. A
cancelled sweep keeps its points and
says "partial"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.state import AppState
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.live_plot import legend_below
from advstudio.ui.widgets.plot_theme import themed
from advstudio.workers import JobManager, JobWorker

COLOURS = {
    "fgsm": (31, 119, 180),
    "bim": (255, 127, 14),
    "pgd": (214, 39, 40),
    "mifgsm": (44, 160, 44),
}
OTHER_COLOUR = (90, 90, 90)  # an attack without a colour of its own
DEFAULT_EPS = "0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3"


def attack_label(name: str) -> str:
    """The sweep's name for an attack (its catalogue label: "PGD-20")."""
    from advstudio.core.attacks.catalogue import get

    try:
        return get(name).label("sweep")
    except ConfigError:  # a result from an attack no longer in the catalogue
        return name


def parse_epsilons(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"epsilons must be numbers separated by commas, not {text!r}") from exc
    if not values:
        raise ConfigError("give at least one epsilon")
    bad = [v for v in values if not 0 <= v <= 1]
    if bad:
        raise ConfigError(f"epsilon {bad[0]:g} is outside [0, 1]")
    return values


class SweepPanel(QWidget):
    sweep_done = Signal(object)  # SweepResult (partial=True when cancelled)

    def __init__(
        self, state: AppState, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        from advstudio.core.attacks.catalogue import attacks_for

        self.state, self.jobs, self.settings = state, jobs, settings
        self.result = None
        self.stale = False  # the curves shown were computed for another model than the current
        state.model_changed.connect(self._on_model)
        self.checks = {e.name: QCheckBox(e.label("sweep")) for e in attacks_for(context="sweep")}
        self.checks["fgsm"].setChecked(True)
        self.checks["pgd"].setChecked(True)
        self.n_images = QSpinBox(minimum=10, maximum=1000, singleStep=100, value=500)
        self.n_images.setToolTip(
            "How many images of the data set to attack (a seeded random "
            "subset; the bundled test digits hold 1,000)"
        )
        self.data = DatasetPicker(settings, fit=True)
        self.data.changed.connect(  # the bundled test digits hold 1,000; other sets more
            lambda d: self.n_images.setMaximum(1000 if d == "digits" else 1_000_000)
        )
        self.epsilons = QLineEdit(str(settings.value("sweep/epsilons", DEFAULT_EPS)))
        self.epsilons.setToolTip("L∞ radii in pixel units [0, 1], separated by commas")
        self.targeted = QCheckBox("targeted (y+1)")
        self.run_button = QPushButton("Run sweep")
        self.run_button.clicked.connect(self.toggle)
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        self.status = QLabel("")
        self.job = JobOwner(self, jobs, self.status)
        controls = QHBoxLayout()
        for w in self.checks.values():
            controls.addWidget(w)
        controls.addWidget(QLabel("images"))
        controls.addWidget(self.n_images)
        controls.addWidget(QLabel("ε"))
        controls.addWidget(self.epsilons, 1)
        controls.addWidget(self.targeted)
        controls.addWidget(self.run_button)
        controls.addWidget(self.export_button)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "ε (L∞, pixel units)")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setLabel("left", "accuracy (solid) · success (dashed)")
        self.plot.setYRange(0, 1.02)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setMinimumHeight(170)
        # no preferred height beyond the minimum: the panel's scroll area sized it by its
        # preferred height (a word-wrapped label makes Qt use height-for-width), so even at
        # 1920×1080 the plot's axis and legend ran off the bottom behind a scroll bar
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.legend = legend_below(self.plot)  # under the curves, never over them
        themed(self.plot)  # dark plots under the dark theme
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.data)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.status)

    def config(self):
        from advstudio.core.attacks.sweep import SweepConfig

        attacks = tuple(k for k, c in self.checks.items() if c.isChecked())
        if not attacks:
            raise ConfigError("tick at least one attack")
        if self.state.model is None:
            raise ConfigError("pick a model first")
        return SweepConfig(
            model=self.state.model_key,
            card=self.state.model_card,
            attacks=attacks,
            epsilons=parse_epsilons(self.epsilons.text()),
            n_images=self.n_images.value(),
            targeted=self.targeted.isChecked(),
            device=self.state.device,
            dataset=self.data.dataset(),
            split=self.data.split(),
            fit=self.data.fit(),
        )

    def toggle(self) -> None:
        if not self.job.cancel():
            self.start()

    def start(self) -> JobWorker | None:
        from advstudio.core.attacks.sweep import SweepResult, run_sweep

        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        self.settings.setValue("sweep/epsilons", self.epsilons.text())
        self.result = SweepResult(config)
        result = self.result

        def connect(w: JobWorker) -> None:
            w.preview.connect(lambda p: self.draw(p.data))
            w.log.connect(self.data.job_log)
            w.returned.connect(lambda r: self._done(r))
            w.aborted.connect(lambda: self._done(result))
            w.finished.connect(lambda: self.run_button.setText("Run sweep"))

        self.plot.clear()
        self.legend.clear()
        self.status.setText("sweeping…")
        self.run_button.setText("Cancel sweep")
        return self.job.start(
            lambda: run_sweep(config, result),
            f"Sweep on {config.model}",
            "The sweep failed",
            connect=connect,
            record=("sweep", config),
        )

    def draw(self, result, final: bool = False) -> None:
        import pyqtgraph as pg
        from PySide6.QtCore import Qt

        self.plot.clear()
        self.legend.clear()
        tag = " (partial)" if final and result.partial else ""
        if final and self.stale:
            tag += f" ({result.config.model})"
        for name, curve in result.curves.items():
            colour = COLOURS.get(name, OTHER_COLOUR)
            style = Qt.PenStyle.DotLine if tag else Qt.PenStyle.SolidLine
            self.plot.plot(
                curve.epsilons,
                curve.accuracy,
                pen=pg.mkPen(colour, width=2, style=style),
                symbol="o",
                symbolSize=6,
                symbolBrush=colour,
                name=f"{attack_label(name)} accuracy{tag}",
            )
            self.plot.plot(
                curve.epsilons,
                curve.success,
                pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
                name=f"{attack_label(name)} success{tag}",
            )

    def _done(self, result) -> None:
        self.result = result
        self.draw(result, final=True)
        self.export_button.setEnabled(bool(result.curves))
        first = next(iter(result.curves.values()), None)
        parts = [f"clean accuracy {result.clean_accuracy * 100:.1f} % on {result.n_images} images"]
        if first and first.accuracy:
            parts.append(
                f"{attack_label(first.attack)} at ε {first.epsilons[-1]:g}: "
                f"{first.accuracy[-1] * 100:.1f} %"
            )
        if result.partial:
            parts.append("partial: cancelled before the last point")
        self.status.setText(f"{result.config.model}: " + "; ".join(parts))
        self.stale = False
        self.sweep_done.emit(result)

    def _on_model(self, _model) -> None:
        """Curves of another model stay to compare with, marked as such (dotted, and the
        status line names the model they were computed for)."""
        result = self.result
        if result is None or not result.curves or self.job.busy:
            return
        stale = result.config.model != self.state.model_key
        if stale != self.stale:
            self.stale = stale
            self.draw(result, final=True)
            text = self.status.text().split(" — ")[0]
            if stale:
                text += (
                    f" — computed for {result.config.model}, not the current model "
                    f"{self.state.model_key}: Run sweep to measure it"
                )
            self.status.setText(text)

    def export_dialog(self) -> None:
        start = str(self.settings.value("last_export_folder", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export sweep", str(Path(start) / "sweep.csv"), "CSV (*.csv)"
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, csv_path: Path) -> list[Path]:
        """The curves as CSV, and the plot as a PNG beside it."""
        from pyqtgraph.exporters import ImageExporter

        from advstudio.core.attacks.sweep import sweep_to_csv

        sweep_to_csv(self.result, csv_path)
        png = csv_path.with_suffix(".png")
        exporter = ImageExporter(self.plot.plotItem)
        exporter.parameters()["width"] = 900
        exporter.export(str(png))
        return [csv_path, png]
