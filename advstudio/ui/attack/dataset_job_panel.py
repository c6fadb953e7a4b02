"""What the Attack tab's Patch and Universal panels share: the data-set picker, a status line
with a progress bar and Cancel while a job runs, the run and curve buttons switched off meanwhile,
and their job (``patch`` or ``universal``) started on the current model and recorded in the run
store as ``advstudio-run`` records it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker


class DatasetJobPanel(QWidget):
    """A panel whose jobs run on images of the chosen data set. A subclass sets ``KIND`` (its
    job kind), makes ``run_button`` and ``curve_button``, and reads its job's metrics in
    :meth:`_on_metrics`."""

    KIND = ""
    run_button: QPushButton
    curve_button: QPushButton

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab = lab
        self.data = DatasetPicker(settings, fit=True)
        self.progress = QProgressBar()
        self.progress.hide()
        self.progress.setFixedWidth(260)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(lambda: self.job.cancel())
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)

    def status_row(self) -> QHBoxLayout:
        """One line: the status, and the progress and Cancel while a job runs."""
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        return row

    def _target_name(self, k: int | None) -> str:
        names = getattr(self.lab.state.model, "class_names", None) or []
        return str(k) if k is None or k >= len(names) else names[k]

    def _noun(self) -> str:
        try:
            return "digits" if self.data.dataset() == "digits" else "images"
        except ConfigError:
            return "images"

    def job_config(self):
        """(kind, config) of the job the panel's run button would start."""
        return self.KIND, self.config()

    def config(self, *args, **kwargs):
        raise NotImplementedError

    def _rescale_config(self, made_with, fallback: dict, **curve):
        """The config of a curve of the panel's existing patch or perturbation: the settings it
        was made with (``made_with``, else the controls' with ``fallback``), on the current
        model and device, so a rerun of the recorded config gives the same curve."""
        now = self.config()
        base = made_with or dataclasses.replace(now, **fallback)
        return dataclasses.replace(base, model=now.model, card=now.card, device=now.device, **curve)

    def _start(
        self, run_job: Callable, config, prior, title: str, failure: str, done: Callable
    ) -> JobWorker | None:
        """Run ``run_job(config, model, prior)`` (the core job of ``KIND``) on the current
        model, recorded in the run store (the Runs tab) as ``advstudio-run`` records it."""
        model = self.lab.state.model

        def connect(w: JobWorker) -> None:
            w.returned.connect(done)
            w.progress.connect(self._on_progress)
            w.metrics.connect(self._on_metrics)
            w.finished.connect(self._job_ended)

        worker = self.job.start(
            lambda: run_job(config, model, prior),
            title,
            failure,
            connect=connect,
            record=(self.KIND, config),
        )
        if worker is not None:
            self.progress.setRange(0, 0)
            self.progress.show()
            self.cancel_button.show()
            self.run_button.setEnabled(False)
            self.curve_button.setEnabled(False)
        return worker

    def _on_progress(self, p) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        self.progress.setFormat(p.message or "%p %")

    def _on_metrics(self, m) -> None:
        """A point of the panel's curve, as the job measures it."""

    def _job_ended(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.run_button.setEnabled(True)
        self.curve_button.setEnabled(True)
        if self.job.worker is not None and self.job.worker.cancel_requested:
            self.status.setText("cancelled.")
