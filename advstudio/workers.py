"""The only bridge between the Qt UI and core jobs.

A :class:`JobWorker` drives a core job (a generator yielding events, see ``advstudio.core.jobs``)
on a ``QThread`` and turns its events into signals. Vocabulary after superqt:

``started``, ``progress(Progress)``, ``metrics(Metrics)``, ``preview(Preview)``, ``log(str)``,
``returned(result)``, ``errored(exception)``, ``paused``, ``resumed``, ``aborted``, and
``finished``, always last, emitted from a ``finally``. No ``returned`` after an abort.

Unlike superqt's GeneratorWorker, *every* exception reaches ``errored`` (``RuntimeError`` and
torch's ``OutOfMemoryError`` included). Pause and cancel are checked between events, so they take
effect within one step of the job; cancel closes the generator so its ``finally`` blocks run.
Signals cross threads by queued connection; the worker never touches a widget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from advstudio.core.jobs import Eta, Log, Metrics, Preview, Progress
from advstudio.responsiveness import prepare_job_thread

PROGRESS_INTERVAL_S = 0.05  # at most 20 progress signals a second
_live_threads: set[QThread] = set()
_parked: list[tuple[JobWorker, QThread]] = []
"""Jobs that did not stop at shutdown (stuck in code that never returns, e.g. a model's forward
in native code): kept referenced for good, because Qt aborts the process ("QThread: Destroyed
while thread is still running") when a running thread's object is deleted."""


def live_threads() -> list[QThread]:
    """Job threads started and not yet finished (tests fail when one outlives its test)."""
    return [t for t in _live_threads if t.isRunning()]


class _Runner(QObject):
    """Lives on the job's thread and drives the generator. It only emits ``event(kind, payload)``;
    :class:`JobWorker`, which lives on the UI thread, receives those by queued connection and
    re-emits them as its public signals. So every handler, lambdas included, runs on the UI
    thread (PySide6 calls a plain callable connected to a worker-thread signal on the worker
    thread, which crashes as soon as it touches a widget)."""

    event = Signal(str, object)

    def __init__(self, factory: Callable[[], Iterator[Any]], control: JobWorker) -> None:
        super().__init__()
        self._factory = factory
        self._cancel = control._cancel
        self._running = control._running

    def run(self) -> None:
        job = None
        last_emit = 0.0
        last_phase = ""
        emit = self.event.emit
        try:
            emit("started", None)
            prepare_job_thread()  # a lower priority, a core left for the window
            job = self._factory()
            while True:
                if not self._running.is_set():
                    emit("paused", None)
                    self._running.wait()
                    if not self._cancel.is_set():
                        emit("resumed", None)
                if self._cancel.is_set():
                    job.close()
                    emit("aborted", None)
                    return
                try:
                    event = next(job)
                except StopIteration as stop:
                    if self._cancel.is_set():
                        emit("aborted", None)
                    else:
                        emit("returned", stop.value)
                    return
                if isinstance(event, Progress):
                    now = time.monotonic()
                    if (
                        now - last_emit >= PROGRESS_INTERVAL_S
                        or event.done == 0
                        or event.done >= event.total > 0
                        or event.phase != last_phase  # a new phase shows at once
                    ):
                        last_emit, last_phase = now, event.phase
                        emit("progress", event)
                elif isinstance(event, Metrics):
                    emit("metrics", event)
                elif isinstance(event, Preview):
                    emit("preview", event)
                elif isinstance(event, Log):
                    emit("log", event.text)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the UI
            if job is not None:
                try:
                    job.close()
                except BaseException:  # noqa: BLE001
                    pass
            emit("errored", exc)
        finally:
            emit("finished", None)
            QThread.currentThread().quit()  # not via the UI thread: shutdown() may be blocking it


class JobWorker(QObject):
    """The UI-thread handle of a running job: its signals and its pause / resume / cancel."""

    started = Signal()
    progress = Signal(object)  # Progress
    metrics = Signal(object)  # Metrics
    preview = Signal(object)  # Preview
    log = Signal(str)
    returned = Signal(object)
    errored = Signal(object)  # the exception (traceback in exc.__traceback__)
    paused = Signal()
    resumed = Signal()
    aborted = Signal()
    finished = Signal()

    def __init__(
        self,
        job_factory: Callable[[], Iterator[Any]],
        title: str = "job",
        show_in_status: bool = True,
        pausable: bool = True,
    ) -> None:
        super().__init__()
        self.title = title
        self.show_in_status = show_in_status
        self.pausable = pausable  # False: one long call (an import) that cannot stop between
        self.recorded = False  # set by JobManager.start: its run goes to the run history
        self._cancel = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self.runner = _Runner(job_factory, self)
        self.runner.event.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self.is_done = False
        self.last_progress: Progress | None = None
        self.eta = Eta()  # the current phase's time left, fed every Progress
        self.started_at: float | None = None

    # -- control, callable from any thread ----------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # wake a paused job so it can abort

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @Slot(str, object)
    def _dispatch(self, kind: str, payload: object) -> None:
        if kind == "started":
            self.started_at = time.monotonic()
        elif kind == "progress":
            self.last_progress = payload
            self.eta.update(payload)
        elif kind == "resumed":
            self.eta.resumed()
        elif kind == "finished":
            self.is_done = True
        signal = getattr(self, kind)
        if payload is None and kind != "returned":
            signal.emit()
        else:
            signal.emit(payload)


class JobManager(QObject):
    """Starts workers on their own threads and keeps them alive until their thread ends."""

    job_started = Signal(object)  # JobWorker
    job_ended = Signal(object)  # JobWorker, after its thread has finished

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._active: dict[JobWorker, QThread] = {}
        self.store = None  # a core.runs.RunStore: jobs started with record=... are kept there

    def start(
        self,
        job_factory: Callable[[], Iterator[Any]],
        title: str = "job",
        show_in_status: bool = True,
        connect: Callable[[JobWorker], None] | None = None,
        record: tuple[str, Any] | tuple[str, Any, Callable[[Any], Iterator[Any]]] | None = None,
        resume_from: Any = None,
        pausable: bool = True,
    ) -> JobWorker:
        """Run ``job_factory()`` on a new thread. ``connect(worker)`` is called before the thread
        starts: connect signals there so no early event is missed.

        ``record=(kind, config)`` keeps the run in the run store (written on the job's thread).
        ``record=(kind, config, run)`` builds the job as ``run(config)`` once its run folder
        exists instead, so a training job checkpoints into its run (resumable from the Runs
        tab) and ``resume_from`` (a checkpoint file) continues an earlier run. Without a store,
        ``job_factory()`` runs unrecorded. ``pausable=False``: the status bar offers no Pause
        (a job that yields nothing while it works would not pause until it ends)."""
        if record is not None and self.store is not None:
            from advstudio.core.runs.wrap import recorded

            kind, config = record[0], record[1]
            store = self.store
            run = record[2] if len(record) > 2 else None
            inner = job_factory

            def job_factory() -> Iterator[Any]:
                return recorded(
                    store,
                    kind,
                    config,
                    run if run is not None else inner(),
                    title=title,
                    resume_from=resume_from,
                )

        worker = JobWorker(job_factory, title, show_in_status, pausable)
        worker.recorded = record is not None
        thread = QThread()
        thread.setObjectName(f"advstudio-{title}")
        worker.runner.moveToThread(thread)
        thread.started.connect(worker.runner.run)
        thread.finished.connect(lambda w=worker: self._ended(w))
        self._active[worker] = thread
        _live_threads.add(thread)
        if connect is not None:
            connect(worker)
        self.job_started.emit(worker)
        thread.start()
        return worker

    def _ended(self, worker: JobWorker) -> None:
        thread = self._active.pop(worker, None)
        if thread is not None:
            _live_threads.discard(thread)
            thread.wait()
            thread.deleteLater()
        worker.runner.deleteLater()
        worker.deleteLater()
        self.job_ended.emit(worker)

    @property
    def active(self) -> list[JobWorker]:
        return [w for w in self._active if not w.is_done]

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every job and wait for their threads, ``timeout_ms`` in all; True when all
        stopped in time. A job still running then (one step that never returns) is parked:
        referenced for good, so its thread's object is never deleted while it runs; the caller
        decides whether to quit without it (``advstudio.app`` does, with ``os._exit``)."""
        for worker in list(self._active):
            worker.cancel()
        deadline = time.monotonic() + timeout_ms / 1000
        for thread in list(self._active.values()):
            thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        stuck = [(w, t) for w, t in self._active.items() if t.isRunning()]
        _parked.extend(pair for pair in stuck if pair not in _parked)
        return not stuck

    def stuck(self) -> list[str]:
        """The titles of jobs whose thread still runs after a cancel (see :meth:`shutdown`)."""
        return [w.title for w, t in self._active.items() if t.isRunning() and w.cancel_requested]
