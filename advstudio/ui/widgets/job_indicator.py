"""Status-bar indicator: what runs, its phase, progress and ETA ("training — 120/469 — 35 s
left"), with pause (only for jobs that can pause) and cancel buttons.

The ETA is the current phase's, from that phase's own smoothed rate (``core.jobs.Eta``): a job
that reports phases (Defence: training, then "evaluating on 1,000 held-out digits") is never
"100 %, 0 s left" while its evaluation runs; once a phase's units are all done and nothing new
is announced, the bar turns busy and says "finishing…".
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from advstudio.core.jobs import format_eta  # noqa: F401 - its old home
from advstudio.workers import JobManager, JobWorker

SHOW_DELAY_MS = 250  # jobs faster than this never flash in the status bar
ETA_WIDTH = 420  # px: a long phase is elided in the middle, never widening the window
TITLE_WIDTH = 220  # px: a long job title ("Defence: 1: FGSM adversarial training") likewise


class JobIndicator(QWidget):
    def __init__(self, jobs: JobManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.worker: JobWorker | None = None
        self.title = QLabel()
        self.bar = QProgressBar(maximum=1000)
        self.bar.setFixedWidth(160)
        self.eta = QLabel()
        self.pause_button = QToolButton(text="Pause", toolTip="Pause the running job")
        self.cancel_button = QToolButton(text="Cancel", toolTip="Cancel the running job (Esc)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.title, self.bar, self.eta, self.pause_button, self.cancel_button):
            layout.addWidget(w)
        self.pause_button.clicked.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(self.cancel_current)
        jobs.job_started.connect(self._on_started)
        jobs.job_ended.connect(lambda _w: self._pick())
        self._timer = QTimer(self, interval=500)
        self._timer.timeout.connect(self._refresh)
        self.hide()

    def _on_started(self, worker: JobWorker) -> None:
        if worker.show_in_status:
            worker.progress.connect(lambda _p: self._refresh())
            worker.paused.connect(self._refresh)
            worker.resumed.connect(self._refresh)
            QTimer.singleShot(SHOW_DELAY_MS, self._pick)

    def _pick(self) -> None:
        visible = [w for w in self.jobs.active if w.show_in_status]
        worker = visible[-1] if visible else None
        if worker is not self.worker:
            self.eta.setMinimumWidth(0)  # another job: its own text decides
        self.worker = worker
        if self.worker is None:
            self._timer.stop()
            self.hide()
            return
        self._timer.start()
        self.show()
        self._refresh()

    def _refresh(self) -> None:
        w = self.worker
        if w is None or w.is_done:
            return
        others = len([x for x in self.jobs.active if x.show_in_status]) - 1
        title = w.title + (f" (+{others} more)" if others > 0 else "")
        self.title.setText(
            self.title.fontMetrics().elidedText(title, Qt.TextElideMode.ElideRight, TITLE_WIDTH)
        )
        self.title.setToolTip(title)
        p = w.last_progress
        if p is None or p.total <= 0:
            self.bar.setRange(0, 0)  # busy indicator
            self.eta.setText("")
        elif p.done >= p.total:
            self.bar.setRange(0, 0)  # the phase's units are done; what follows is unannounced
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(1000 * p.done / p.total))
        if p is not None:
            text = w.eta.describe()
            metrics = self.eta.fontMetrics()
            self.eta.setText(metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, ETA_WIDTH))
            # as wide as its widest text so far: the status bar does not jump every second as
            # "10 s left" becomes "9 s left" (nor cut the text while it re-lays out)
            wide = min(ETA_WIDTH, metrics.horizontalAdvance(self.eta.text()) + 6)
            if wide > self.eta.minimumWidth():
                self.eta.setMinimumWidth(wide)
            self.bar.setToolTip(p.message)
            self.eta.setToolTip(
                p.message + "\nThe time left is this phase's, at its own recent rate."
            )
        self.pause_button.setVisible(w.pausable)
        self.pause_button.setText("Resume" if w.is_paused else "Pause")
        if w.is_paused:
            self.eta.setText("paused")

    def _toggle_pause(self) -> None:
        if self.worker is None or not self.worker.pausable:
            return
        if self.worker.is_paused:
            self.worker.resume()
        else:
            self.worker.pause()
        self._refresh()

    def cancel_current(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.title.setText(self.worker.title + " (cancelling…)")
