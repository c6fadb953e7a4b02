"""Start / Pause / Stop buttons for a tab's training job, in one place for every lab tab.

The tab connects ``start_button.clicked`` to its own start method, and hands the worker it
started to :meth:`RunControls.attach`; the buttons then follow the job (Pause turns into Resume
while it is paused, everything resets when its thread ends).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from advstudio.workers import JobWorker


class RunControls(QWidget):
    resuming = Signal()  # just before a paused job resumes (the playground's step mode stops then)

    def __init__(
        self, start_text: str = "Train", pausable: bool = True, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.worker: JobWorker | None = None
        self.start_button = QPushButton(start_text)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause the job between two steps; press again to resume")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the job; what it has measured so far is kept")
        self.pause_button.setVisible(pausable)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for b in (self.start_button, self.pause_button, self.stop_button):
            layout.addWidget(b)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self._set_running(False)

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.is_done

    def attach(self, worker: JobWorker) -> JobWorker:
        """Follow ``worker`` (call right after starting it)."""
        self.worker = worker
        worker.paused.connect(lambda: self.pause_button.setText("Resume"))
        worker.resumed.connect(lambda: self.pause_button.setText("Pause"))
        worker.finished.connect(lambda: self._set_running(False))
        self._set_running(not worker.is_done)
        return worker

    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self.worker.is_paused:
            self.resuming.emit()
            self.worker.resume()
        else:
            self.worker.pause()

    def stop(self) -> None:
        if self.running:
            self.worker.cancel()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setText("Pause")
