"""Robust accuracy of the current model in one click: AutoAttack standard (APGD-CE, APGD-T,
FAB-T, Square) or the faster ensemble (APGD-CE, APGD-T, SPSA;
:func:`~advstudio.core.attacks.robust.run_robust`) at the Attack tab's eps on the chosen data set
(the bundled test digits by default), next to the accuracy under FGSM alone, with how many images
each attack was the first to break and AutoAttack's warnings (randomised model, probability
outputs, zero gradients, gradient masking). Recorded in the run store; the table exports as CSV."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.results_table import ResultsTable
from advstudio.ui.widgets.topk_bars import TopKBars
from advstudio.workers import JobManager, JobWorker

RUN_TEXT = "Robust accuracy"
ENSEMBLE_TEXT = {
    "standard": "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5,000)",
    "fast": "fast (APGD-CE, APGD-T, SPSA)",
}
QUERIES = {"standard": 5000, "fast": 1000}  # each ensemble's query budget when chosen


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


class RobustPanel(QWidget):
    """``lab`` is the Attack tab (model key, ε, device). ``evaluated(RobustResult)`` when a run
    completes."""

    evaluated = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.jobs, self.settings = lab, jobs, settings
        self.result = None
        self.n_images = QSpinBox(
            minimum=1,
            maximum=1000,
            singleStep=50,
            value=int(settings.value("robust/n_images", 200)),
        )
        self.n_images.setToolTip(
            "How many images of the data set to evaluate (a seeded random "
            "subset; the bundled test digits hold 1,000)"
        )
        self.data = DatasetPicker(settings, fit=True)
        self.data.changed.connect(  # the bundled test digits hold 1,000; other sets more
            lambda d: self.n_images.setMaximum(1000 if d == "digits" else 1_000_000)
        )
        self.steps = QSpinBox(
            minimum=1, maximum=1000, value=int(settings.value("robust/steps", 100))
        )
        self.steps.setToolTip("Steps per APGD run (APGD-T runs once per target class)")
        self.queries = QSpinBox(
            minimum=50,
            maximum=100_000,
            singleStep=100,
            value=int(settings.value("robust/queries", QUERIES["standard"])),
        )
        self.queries.setToolTip(
            "The query attack's budget per image: Square's in AutoAttack "
            "standard (5,000 there), SPSA's in the fast ensemble (at least "
            "50: one SPSA step costs 21 queries)"
        )
        # -- the ensemble choice (attack lab III)
        self.ensemble = QComboBox()
        for key, text in ENSEMBLE_TEXT.items():
            self.ensemble.addItem(text, key)
        self.ensemble.setCurrentIndex(
            max(self.ensemble.findData(settings.value("robust/ensemble", "standard")), 0)
        )
        self.ensemble.currentIndexChanged.connect(
            lambda: self.queries.setValue(QUERIES[self.ensemble.currentData()])
        )
        self.ensemble.setToolTip(
            "AutoAttack standard: the per-image worst case over four "
            "attacks (slow: Square spends up to 5,000 queries per digit); "
            "fast: the earlier three-attack ensemble"
        )
        self.run_button = QPushButton(RUN_TEXT)
        self.run_button.setToolTip(
            "Each attack of the ensemble in turn on the digits that "
            "survived, at the ε of the attack controls; progress in the "
            "status bar"
        )
        self.run_button.clicked.connect(self.toggle)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        controls = QHBoxLayout()
        controls.addWidget(self.ensemble)
        for text, widget in (
            ("images", self.n_images),
            ("APGD steps", self.steps),
            ("queries", self.queries),
        ):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(self.run_button)
        controls.addWidget(self.export_button)
        controls.addStretch(1)

        self.bars = TopKBars(3)
        self.bars.setToolTip(
            "Accuracy on the evaluated digits: clean, under FGSM alone, and "
            "under the whole ensemble (robust)"
        )
        self.table = ResultsTable(["Measure", "Accuracy", "Images"])
        self.table.setToolTip(
            "Accuracy on the evaluated digits, and how many digits each "
            "attack was the first to break (the later attacks only see the "
            "digits the earlier ones left)"
        )
        self.status = QLabel("", wordWrap=True)
        self.warnings = QLabel("", wordWrap=True)
        self.warnings.setStyleSheet("color: #b35900")
        self.warnings.setToolTip(
            "AutoAttack's checks: signs that the number above overstates robustness"
        )
        self.job = JobOwner(self, jobs, self.status)
        body = QHBoxLayout()
        body.addWidget(self.bars, 2)
        body.addWidget(self.table, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.data)
        layout.addLayout(body, 1)
        layout.addWidget(self.warnings)
        layout.addWidget(self.status)

    def config(self):
        from advstudio.core.attacks.robust import RobustConfig

        state = self.lab.state
        if state.model is None:
            raise ConfigError("pick a model first")
        return RobustConfig(
            model=state.model_key,
            card=state.model_card,
            eps=self.lab.eps,
            ensemble=self.ensemble.currentData(),
            n_images=self.n_images.value(),
            steps=self.steps.value(),
            max_queries=self.queries.value(),
            square_queries=self.queries.value(),
            device=state.device,
            dataset=self.data.dataset(),
            split=self.data.split(),
            fit=self.data.fit(),
        )

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
        for key, widget in (
            ("n_images", self.n_images),
            ("steps", self.steps),
            ("queries", self.queries),
        ):
            self.settings.setValue(f"robust/{key}", widget.value())
        self.settings.setValue("robust/ensemble", self.ensemble.currentData())
        self.warnings.setText("")

        def connect(w: JobWorker) -> None:
            w.metrics.connect(self._live)
            w.log.connect(self._log)
            w.log.connect(self.data.job_log)
            w.returned.connect(self._show)
            w.aborted.connect(lambda: self.status.setText("Cancelled."))
            w.finished.connect(lambda: self.run_button.setText(RUN_TEXT))

        self.status.setText(f"evaluating {config.n_images} images at ε {config.eps:g}…")
        self.run_button.setText("Cancel")
        return self.job.start(
            lambda: run_robust(config),
            f"Robust accuracy of {config.model}",
            "Robust accuracy failed",
            connect=connect,
            record=("robust", config),
        )

    def _live(self, metrics) -> None:
        v = metrics.values
        self.status.setText(
            f"{int(v['images'])} images so far: clean {_pct(v['clean_accuracy'])}"
            f", FGSM {_pct(v['fgsm_accuracy'])}, robust ≤ "
            f"{_pct(v['robust_accuracy'])}"
        )

    def _log(self, text: str) -> None:
        if text.startswith("check "):
            self.warnings.setText("\n".join(filter(None, [self.warnings.text(), "⚠ " + text])))

    def _show(self, result) -> None:
        from advstudio.core.attacks.robust import attack_label

        self.result = result
        n = result.n_images
        self.bars.set_prediction(
            ["clean", "FGSM alone", "robust"],
            [result.clean_accuracy, result.fgsm_accuracy, result.robust_accuracy],
        )
        rows = [
            [
                "Clean accuracy",
                _pct(result.clean_accuracy),
                f"{round(result.clean_accuracy * n)} of {n}",
            ],
            [
                "FGSM-alone accuracy",
                _pct(result.fgsm_accuracy),
                f"{round(result.fgsm_accuracy * n)} of {n}",
            ],
            [
                "Robust accuracy",
                _pct(result.robust_accuracy),
                f"{round(result.robust_accuracy * n)} of {n}",
            ],
        ]
        for name in result.attacks:
            rows.append(
                [
                    f"broken first by {attack_label(name)}",
                    f"{result.seconds.get(name, 0.0):.1f} s",
                    str(result.broken.get(name, 0)),
                ]
            )
        self.table.set_rows(rows)
        self.warnings.setText(
            "\n".join(f"⚠ check {w.check}: {w.text}" for w in getattr(result, "warnings", ()))
        )
        self.export_button.setEnabled(True)
        gap = result.fgsm_accuracy - result.robust_accuracy
        self.status.setText(
            f"ε {result.eps:g}, {n} images: robust {_pct(result.robust_accuracy)}"
            f" vs {_pct(result.fgsm_accuracy)} under FGSM alone (FGSM overstates "
            f"it by {gap * 100:.1f} points)."
        )
        self.evaluated.emit(result)

    def export_dialog(self) -> None:
        start = str(self.settings.value("last_export_folder", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export robust accuracy", str(Path(start) / "robust.csv"), "CSV (*.csv)"
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, csv_path: Path) -> Path:
        """The table as CSV (measure, value, images)."""
        return self.table.to_csv(csv_path)
