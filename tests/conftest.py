"""Shared fixtures. Qt runs offscreen; no test touches the network or the user's settings."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_dangling_job_threads(request):
    """Fail a Qt test that leaves a job thread running (napari's _dangling_qthreads idea)."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    qtbot = request.getfixturevalue("qtbot")  # set up first, so torn down after this fixture
    from advstudio.ui.responsiveness import MainThreadGarbageCollector

    collector = MainThreadGarbageCollector()  # as the app does: no GC on job threads
    yield
    from advstudio import workers

    try:
        qtbot.waitUntil(lambda: not workers.live_threads(), timeout=10_000)
    except Exception:
        names = [t.objectName() for t in workers.live_threads()]
        pytest.fail(f"job threads still running after the test: {names}")
    finally:
        collector.stop()


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
