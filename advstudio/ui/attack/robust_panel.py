"""Robust accuracy of the current digit model in one click: the baseline ensemble (APGD-CE,
APGD-T, SPSA; :func:`~advstudio.core.attacks.robust.run_robust`) at the Attack tab's eps on the
bundled test digits, next to the accuracy under FGSM alone, with how many images each attack
was the first to break. Recorded in the run store; the table exports as CSV."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.results_table import ResultsTable
from advstudio.ui.widgets.topk_bars import TopKBars
from advstudio.workers import JobManager, JobWorker

RUN_TEXT = "Robust accuracy (baseline)"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


class RobustPanel(QWidget):
    """``lab`` is the Attack tab (model key, ε, device). ``evaluated(RobustResult)`` when a run
    completes."""

    evaluated = Signal(object)

    def __init__(self, lab, jobs: JobManager, settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab, self.jobs, self.settings = lab, jobs, settings
        self.result = None
        self.n_images = QSpinBox(minimum=1, maximum=1000, singleStep=50,
                                 value=int(settings.value("robust/n_images", 200)))
        self.n_images.setToolTip("How many of the 1,000 bundled test digits to evaluate (1-1000)")
        self.steps = QSpinBox(minimum=1, maximum=1000,
                              value=int(settings.value("robust/steps", 100)))
        self.steps.setToolTip("Steps per APGD run (APGD-T runs once per target class)")
        self.queries = QSpinBox(minimum=50, maximum=100_000, singleStep=100,
                                value=int(settings.value("robust/queries", 1000)))
        self.queries.setToolTip("SPSA's query budget per image (at least 50: one SPSA step "
                                "costs 21 queries)")
        self.run_button = QPushButton(RUN_TEXT)
        self.run_button.setToolTip("APGD-CE, then APGD-T, then SPSA on the digits that survived, "
                                   "at the ε of the attack controls; progress in the status bar")
        self.run_button.clicked.connect(self.toggle)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        controls = QHBoxLayout()
        for text, widget in (("images", self.n_images), ("APGD steps", self.steps),
                             ("SPSA queries", self.queries)):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(self.run_button)
        controls.addWidget(self.export_button)
        controls.addStretch(1)

        self.bars = TopKBars(3)
        self.bars.setToolTip("Accuracy on the evaluated digits: clean, under FGSM alone, and "
                             "under the whole ensemble (robust)")
        self.table = ResultsTable(["Measure", "Accuracy", "Digits"])
        self.table.setToolTip("Accuracy on the evaluated digits, and how many digits each "
                              "attack was the first to break (the later attacks only see the "
                              "digits the earlier ones left)")
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)
        body = QHBoxLayout()
        body.addWidget(self.bars, 2)
        body.addWidget(self.table, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(body, 1)
        layout.addWidget(self.status)

    def config(self):
        from advstudio.core.attacks.robust import RobustConfig

        state = self.lab.state
        model = state.model
        if model is None or model.input_shape[0] != 1 or model.num_classes != 10:
            raise ConfigError("robust accuracy runs on the bundled digits: pick a digit model")
        return RobustConfig(model=state.model_key, eps=self.lab.eps,
                            n_images=self.n_images.value(), steps=self.steps.value(),
                            max_queries=self.queries.value(), device=state.device)

    @property
    def worker(self) -> JobWorker | None:
        """The latest evaluation's job."""
        return self.job.worker

    def toggle(self) -> None:
        if not self.job.cancel():
            self.start()

    def start(self) -> JobWorker | None:
        from advstudio.core.attacks.robust import run_robust

        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        for key, widget in (("n_images", self.n_images), ("steps", self.steps),
                            ("queries", self.queries)):
            self.settings.setValue(f"robust/{key}", widget.value())

        def connect(w: JobWorker) -> None:
            w.metrics.connect(self._live)
            w.returned.connect(self._show)
            w.aborted.connect(lambda: self.status.setText("Cancelled."))
            w.finished.connect(lambda: self.run_button.setText(RUN_TEXT))

        self.status.setText(f"evaluating {config.n_images} digits at ε {config.eps:g}…")
        self.run_button.setText("Cancel")
        return self.job.start(lambda: run_robust(config), f"Robust accuracy of {config.model}",
                              "Robust accuracy failed", connect=connect,
                              record=("robust", config))

    def _live(self, metrics) -> None:
        v = metrics.values
        self.status.setText(f"{int(v['images'])} digits so far: clean {_pct(v['clean_accuracy'])}"
                            f", FGSM {_pct(v['fgsm_accuracy'])}, robust ≤ "
                            f"{_pct(v['robust_accuracy'])}")

    def _show(self, result) -> None:
        from advstudio.core.attacks.robust import attack_label

        self.result = result
        n = result.n_images
        self.bars.set_prediction(["clean", "FGSM alone", "robust"],
                                 [result.clean_accuracy, result.fgsm_accuracy,
                                  result.robust_accuracy])
        rows = [["Clean accuracy", _pct(result.clean_accuracy),
                 f"{round(result.clean_accuracy * n)} of {n}"],
                ["FGSM-alone accuracy", _pct(result.fgsm_accuracy),
                 f"{round(result.fgsm_accuracy * n)} of {n}"],
                ["Robust accuracy", _pct(result.robust_accuracy),
                 f"{round(result.robust_accuracy * n)} of {n}"]]
        for name in result.attacks:
            rows.append([f"broken first by {attack_label(name)}", "",
                         str(result.broken.get(name, 0))])
        self.table.set_rows(rows)
        self.export_button.setEnabled(True)
        gap = result.fgsm_accuracy - result.robust_accuracy
        self.status.setText(f"ε {result.eps:g}, {n} digits: robust {_pct(result.robust_accuracy)}"
                            f" vs {_pct(result.fgsm_accuracy)} under FGSM alone (FGSM overstates "
                            f"it by {gap * 100:.1f} points).")
        self.evaluated.emit(result)

    def export_dialog(self) -> None:
        start = str(self.settings.value("last_export_folder", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(self, "Export robust accuracy",
                                              str(Path(start) / "robust.csv"), "CSV (*.csv)")
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, csv_path: Path) -> Path:
        """The table as CSV (measure, value, images)."""
        return self.table.to_csv(csv_path)
