"""One widget's job slot: at most one job in flight, the latest request queued, errors reported.

Every tab and panel that runs a job did the same four things by hand: refuse (or queue) a new
run while one is in flight, remember only the latest queued request (a slider dragged through
twenty values needs one re-run, not twenty), start the next when the job finishes, and show a
failure. Each copy did one of them differently; sweeps showed errors in a bare message box while
the rest used :func:`report_job_error`. A :class:`JobOwner` is that slot, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QWidget

from advstudio.ui.widgets.error_box import report_job_error
from advstudio.workers import JobManager, JobWorker


class JobOwner(QObject):
    """The job slot of ``parent``; a failure becomes one line in ``status`` (and a message box
    with the traceback when it is not one of advstudio's expected errors)."""

    def __init__(self, parent: QWidget, jobs: JobManager, status: QLabel) -> None:
        super().__init__(parent)
        self._parent, self.jobs, self.status = parent, jobs, status
        self.worker: JobWorker | None = None
        self._failure = "The job failed"  # the title of the latest start's error box
        self._queued: Callable[[], object] | None = None

    @property
    def busy(self) -> bool:
        """A job of this slot is in flight (it may be paused)."""
        return self.worker is not None and not self.worker.is_done

    def start(
        self,
        job_factory: Callable[[], Iterator[Any]],
        title: str,
        failure: str,
        connect: Callable[[JobWorker], None] | None = None,
        **start_args: Any,
    ) -> JobWorker | None:
        """Start the job unless one is in flight (then None: nothing starts). ``failure`` is
        the message box's title when the job fails; ``connect`` and ``start_args`` go to
        :meth:`JobManager.start`."""
        if self.busy:
            return None

        def wire(worker: JobWorker) -> None:
            worker.errored.connect(self.report)
            if connect is not None:
                connect(worker)
            worker.finished.connect(self._start_queued)

        self._failure = failure
        self.worker = self.jobs.start(job_factory, title, connect=wire, **start_args)
        return self.worker

    def request(self, start: Callable[[], object]) -> None:
        """Call ``start`` now when the slot is free, else once the job in flight finishes;
        a later request replaces an earlier one still waiting."""
        if self.busy:
            self._queued = start
        else:
            start()

    def cancel(self) -> bool:
        """Cancel the job in flight and drop a queued request; True when there was a job."""
        self._queued = None
        if not self.busy:
            return False
        self.worker.cancel()
        return True

    def report(self, exc: BaseException) -> None:
        """The one way a job's failure reaches the user (see :func:`report_job_error`)."""
        report_job_error(self._parent, self.status, self._failure, exc)

    def _start_queued(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None:
            queued()
