"""Shared fixtures. Qt runs offscreen; no test touches the network or the user's settings."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _forget_in_memory_models():
    """Models a test registers in memory (``advstudio.open``, ``register_model``, a job given
    a module) are forgotten after it, so no test sees another's (``memory:ColourNet-2``)."""
    yield
    import sys

    memory = sys.modules.get("advstudio.core.models.memory")
    if memory is not None:
        for key in list(memory.registered()):
            memory.unregister(key)


@pytest.fixture(autouse=True)
def _no_dangling_job_threads(request, monkeypatch):
    """Fail a Qt test that leaves a job thread running (napari's _dangling_qthreads idea).

    Every job a Qt test starts is recorded with where it was started. A job the test body
    started that has not returned, failed or been aborted when the body ends fails the test
    (``pytest_runtest_call`` below); so does any job thread still alive 10 s into teardown."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    qtbot = request.getfixturevalue("qtbot")  # set up first, so torn down after this fixture
    from advstudio import workers
    from advstudio.responsiveness import MainThreadGarbageCollector

    started: list[_StartedJob] = []
    real_start = workers.JobManager.start

    def recording_start(self, *args, **kwargs):
        worker = real_start(self, *args, **kwargs)  # its events reach the UI thread queued,
        job = _StartedJob(worker, _calling_place(), _phase(request.node))  # so none is missed
        for signal in (worker.returned, worker.errored, worker.aborted):
            signal.connect(job.end)
        started.append(job)
        return worker

    monkeypatch.setattr(workers.JobManager, "start", recording_start)
    request.node.advstudio_jobs = started
    collector = MainThreadGarbageCollector()  # as the app does: no GC on job threads
    yield
    try:
        qtbot.waitUntil(lambda: not workers.live_threads(), timeout=10_000)
    except Exception:
        names = [t.objectName() for t in workers.live_threads()]
        pytest.fail(f"job threads still running after the test: {names}")
    finally:
        collector.stop()


class _StartedJob:
    def __init__(self, worker, where: str, phase: str) -> None:
        self.worker, self.where, self.phase = worker, where, phase
        self.ended = False  # returned, errored or aborted: only `finished` is still to come

    def end(self, *_args) -> None:
        self.ended = True


def _phase(item) -> str:
    return getattr(item, "advstudio_phase", "setup")


def _calling_place() -> str:
    """The first frame under tests/ that started the job (file:line), for the failure message."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}tests{os.sep}" in name and not name.endswith("conftest.py"):
            return f"{os.path.relpath(name)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A job the test body started must have ended (returned, errored, aborted) by its end."""
    item.advstudio_phase = "call"
    try:
        result = yield
    finally:
        item.advstudio_phase = "teardown"
    jobs = [j for j in getattr(item, "advstudio_jobs", ()) if j.phase == "call"]
    if jobs:
        from PySide6.QtWidgets import QApplication

        QApplication.processEvents()  # deliver events already queued
        left = [j for j in jobs if not j.ended and not j.worker.is_done]
        for j in left:
            j.worker.cancel()
        if left:
            pytest.fail(
                "the test left jobs running (start them inside qtbot.waitSignal(..."
                "finished)): "
                + ", ".join(f"{j.worker.title!r} started at {j.where}" for j in left),
                pytrace=False,
            )
    return result


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """No test writes into the real user data folder (the run store lives under it)."""
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path_factory.mktemp("advstudio-home")))


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def digit_png(tmp_path):
    """A copy of the bundled test digit 7, somewhere the user might keep it."""
    import shutil

    from advstudio.core.resources import resources_dir

    return shutil.copy(resources_dir() / "samples" / "digit_7.png", tmp_path / "seven.png")
