"""The Qt bridge: event order, every error reaching `errored`, cancel, pause, UI thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from advstudio.core.jobs import Log, Metrics, Preview, Progress
from advstudio.workers import JobManager


@pytest.fixture
def jobs(qtbot):
    manager = JobManager()
    yield manager
    manager.shutdown()


def test_event_order_and_signals_arrive_on_the_ui_thread(qtbot, jobs):
    threads = []

    def job():
        threads.append(threading.get_ident())
        yield Progress(0, 2)
        yield Metrics(0, {"loss": 1.0})
        yield Preview("grid", [[0.5]])
        yield Log("hello")
        yield Progress(2, 2)
        return 42

    seen = []

    def connect(w):
        for name in ("started", "progress", "metrics", "preview", "log", "returned", "finished"):
            getattr(w, name).connect(
                lambda *a, n=name: seen.append(
                    (n, QThread.currentThread() is QApplication.instance().thread())
                )
            )

    with qtbot.waitSignal(jobs.job_ended, timeout=5000):
        w = jobs.start(job, "t", connect=connect)
    assert [n for n, _ in seen] == [
        "started",
        "progress",
        "metrics",
        "preview",
        "log",
        "progress",
        "returned",
        "finished",
    ]
    assert all(on_ui for _, on_ui in seen), "handlers must run on the UI thread"
    assert threads[0] != threading.get_ident(), "the job must run off the UI thread"
    assert w.is_done


class TorchLikeOOM(RuntimeError):
    """torch.OutOfMemoryError is a RuntimeError; superqt would swallow it."""


@pytest.mark.parametrize(
    "exc", [TorchLikeOOM("CUDA out of memory"), ValueError("bad"), KeyboardInterrupt()]
)
def test_every_exception_reaches_errored_then_finished(qtbot, jobs, exc):
    def job():
        yield Progress(0, 1)
        raise exc

    got = []
    with qtbot.waitSignal(jobs.job_ended, timeout=5000):
        w = jobs.start(
            job,
            "failing",
            connect=lambda w: (
                w.errored.connect(lambda e: got.append(("errored", e))),
                w.returned.connect(lambda r: got.append(("returned", r))),
                w.finished.connect(lambda: got.append(("finished", None))),
            ),
        )
    assert got == [("errored", exc), ("finished", None)]
    assert w.is_done


def test_a_factory_that_raises_is_reported(qtbot, jobs):
    def factory():
        raise TypeError("config is wrong")

    with qtbot.waitSignal(jobs.job_ended, timeout=5000):
        errors = []
        jobs.start(factory, "bad", connect=lambda w: w.errored.connect(errors.append))
    assert isinstance(errors[0], TypeError)


def test_cancel_closes_the_generator_and_never_returns(qtbot, jobs):
    cleaned = threading.Event()
    gate = threading.Event()

    def job():
        try:
            for i in range(10_000):
                gate.wait(1)
                yield Progress(i, 10_000)
            return "should not happen"
        finally:
            cleaned.set()

    got = []

    def connect(w):
        w.returned.connect(lambda r: got.append("returned"))
        w.aborted.connect(lambda: got.append("aborted"))
        w.finished.connect(lambda: got.append("finished"))

    w = jobs.start(job, "long", connect=connect)
    qtbot.waitUntil(lambda: w.last_progress is not None)
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.cancel()
        gate.set()
    assert got == ["aborted", "finished"]
    assert cleaned.is_set()


def test_pause_and_resume(qtbot, jobs):
    fast = threading.Event()  # steps take 10 ms until the test lets them run freely
    count = [0]

    def job():
        for i in range(1000):
            count[0] = i
            fast.wait(0.01)
            yield Progress(i, 1000)
        return "ok"

    w = jobs.start(job, "pausable")
    with qtbot.waitSignal(w.paused, timeout=5000):
        w.pause()
    frozen = count[0]
    # free-running steps would emit progress within 50 ms (PROGRESS_INTERVAL_S); paused, none
    with qtbot.assertNotEmitted(w.progress, wait=150):
        fast.set()
    assert count[0] == frozen and w.is_paused
    with qtbot.waitSignals([w.resumed, w.returned, w.finished], order="strict", timeout=10000):
        w.resume()


def test_cancel_while_paused(qtbot, jobs):
    def job():
        for i in range(1000):
            threading.Event().wait(0.01)
            yield Progress(i, 1000)

    w = jobs.start(job, "paused-then-cancelled")
    with qtbot.waitSignal(w.paused, timeout=5000):
        w.pause()
    with qtbot.waitSignals([w.aborted, w.finished], order="strict", timeout=5000):
        w.cancel()


def test_a_job_leaves_one_core_for_the_window_and_the_ui_thread_keeps_its_threads(qtbot, jobs):
    import os

    import torch

    ui_threads = torch.get_num_threads()
    seen = []

    def job():
        seen.append(torch.get_num_threads())
        yield Progress(1, 1)
        return None

    with qtbot.waitSignal(jobs.job_ended, timeout=10_000):
        jobs.start(job, "threads")
    assert seen == [max(1, min(ui_threads, (os.cpu_count() or 1) - 1))]
    assert torch.get_num_threads() == ui_threads  # the setting is the job thread's own


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="no per-thread nice")
def test_a_job_thread_runs_at_a_lower_cpu_priority_than_the_window(qtbot, jobs):
    import os
    import sys

    from advstudio.responsiveness import JOB_NICENESS

    if sys.platform != "linux":
        pytest.skip("per-thread nice values are a Linux feature")
    ui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []

    def job():
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        yield Progress(1, 1)

    with qtbot.waitSignal(jobs.job_ended, timeout=10_000):
        jobs.start(job, "nice")
    assert seen == [min(ui + JOB_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ui
