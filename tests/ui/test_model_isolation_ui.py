"""A model file whose code never returns or crashes, dropped on the real window: it is tried in
a child process, refused with the core's message, Cancel kills the child, the previous model
stays current, and closing the window never waits on a stuck job."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from PySide6.QtCore import Qt

from advstudio.core.errors import ModelCrashError, ModelHangError
from advstudio.core.jobs import Progress
from advstudio.workers import live_threads
from tests.corpus.make_corpus import endless_torchscript

from .conftest import drop_files


def _boxes(widget) -> list[str]:
    return [w.text() for w in widget.children() if w.metaObject().className() == "QMessageBox"]


def test_an_endless_model_is_refused_the_old_one_kept_and_the_window_closes(
    qtbot, window, tmp_path
):
    path = endless_torchscript(tmp_path / "endless.pt")
    window.models.probe_timeout_s = 1
    key, model = window.state.model_key, window.state.model
    with qtbot.waitSignal(window.models.failed, timeout=120_000) as failed:
        assert drop_files(window, path)
    exc = failed.args[1]
    expected = (
        "the model endless.pt did not return from a forward pass within 1 s (an endless "
        "loop?); the process trying it was stopped"
    )
    assert isinstance(exc, ModelHangError) and str(exc) == expected
    assert window.state.model is model and window.state.model_key == key
    assert expected in _boxes(window.image_tab)
    assert window.image_tab.model_combo.currentData() == key
    assert multiprocessing.active_children() == []  # the child was killed
    qtbot.waitUntil(lambda: not window.jobs.active, timeout=10_000)
    window.close()
    assert window.stuck_on_quit == [] and not live_threads()


def test_cancel_in_the_status_bar_kills_the_child_at_once(qtbot, window, tmp_path):
    path = endless_torchscript(tmp_path / "endless.pt")
    window.models.probe_timeout_s = 600
    key, model = window.state.model_key, window.state.model
    assert drop_files(window, path)
    worker = window.models.current_job

    def in_forward() -> bool:
        p = worker.last_progress
        return p is not None and p.message.startswith("Trying a forward pass of endless.pt")

    qtbot.waitUntil(in_forward, timeout=120_000)
    (child,) = multiprocessing.active_children()
    assert child.is_alive()
    with qtbot.waitSignal(window.models.failed, timeout=10_000) as failed:
        qtbot.mouseClick(window.job_indicator.cancel_button, Qt.MouseButton.LeftButton)
    assert failed.args == [f"file:{path}", None]  # cancelled: no error box
    assert not child.is_alive() and child.exitcode == -9
    qtbot.waitUntil(lambda: worker.is_done, timeout=10_000)
    assert window.state.model is model and window.state.model_key == key
    assert window.image_tab.model_combo.currentData() == key


def test_a_model_that_crashes_natively_leaves_the_window_working(
    qtbot, window, tmp_path, monkeypatch
):
    from advstudio.core.models import isolation
    from tests.core.helpers import abort_in_forward

    monkeypatch.setattr(isolation, "child_main", abort_in_forward)  # the child's entry
    path = endless_torchscript(tmp_path / "crashing.pt")  # crashes before its endless loop
    model = window.state.model
    with qtbot.waitSignal(window.models.failed, timeout=120_000) as failed:
        assert drop_files(window, path)
    exc = failed.args[1]
    assert isinstance(exc, ModelCrashError)
    assert str(exc) == (
        "the model crashing.pt crashed the process that tried it (signal SIGABRT); "
        "it was not loaded"
    )
    assert window.state.model is model
    monkeypatch.undo()
    with qtbot.waitSignal(window.state.model_changed, timeout=30_000):
        window.image_tab.select_model("digits-mlp")  # the window still works
    assert window.state.model_key == "digits-mlp"
    qtbot.waitUntil(lambda: not window.jobs.active, timeout=30_000)


def test_closing_does_not_wait_for_a_job_stuck_in_one_step(qtbot, window, monkeypatch):
    from advstudio import app
    from advstudio.ui import main_window

    monkeypatch.setattr(main_window, "QUIT_WAIT_MS", 100)
    exits = []
    monkeypatch.setattr(app, "_exit_now", lambda w, code: exits.append(code))
    release = threading.Event()

    def stuck():
        yield Progress(0, 1, "forward")
        release.wait()  # one step that never returns, as a forward in native code
        yield Progress(1, 1, "")

    worker = window.jobs.start(stuck, "Endless forward")
    qtbot.waitUntil(lambda: worker.last_progress is not None, timeout=10_000)
    try:
        window.close()
        assert window.stuck_on_quit == ["Endless forward"] and not window.isVisible()
        assert live_threads()  # close returned while the job still ran: it did not wait
        assert app.finish(window, 0) == 0 and exits == [0]  # the app ends at once, code 0
    finally:
        release.set()
    qtbot.waitUntil(lambda: worker.is_done, timeout=10_000)
    assert worker.cancel_requested and app.finish(window, 0) == 0 and exits == [0]


@pytest.mark.slow
def test_the_real_app_quits_with_code_0_past_an_endless_model(tmp_path):
    """The real ``advstudio`` process: the endless file is refused by its probe, then the same
    model's forward is run in-process on a job thread (stuck in TorchScript's interpreter, as a
    model that loops only on some inputs would be) and the window is closed."""
    import os
    import subprocess
    import sys
    import time

    model = endless_torchscript(tmp_path / "endless.pt")
    script = tmp_path / "run_app.py"
    script.write_text(
        f"""
import sys
from PySide6.QtCore import QTimer
from advstudio import app
from advstudio.core.jobs import Progress
from advstudio.ui import main_window

MODEL = {str(model)!r}
real_init = main_window.MainWindow.__init__


def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    self.models.probe_timeout_s = 1
    self.labs_ready.connect(lambda: self.models.request("file:" + MODEL))
    self.models.failed.connect(lambda key, exc: (print("refused:", exc, flush=True), stick(self)))


def stick(window):
    import torch

    net = torch.jit.load(MODEL)

    def job():
        yield Progress(0, 1, "forward")
        net(torch.zeros(1, 1, 28, 28))

    window.jobs.start(job, "Endless forward")
    QTimer.singleShot(1000, lambda: (print("closing", flush=True), window.close()))


main_window.MainWindow.__init__ = init
if __name__ == "__main__":
    sys.exit(app.main([]))
"""
    )
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        ADVSTUDIO_HOME=str(tmp_path / "home"),
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    lines, closed_at = [], None
    for line in process.stdout:  # ends when the process does
        lines.append(line)
        if line.startswith("closing"):
            closed_at = time.monotonic()
    code = process.wait(timeout=300)
    assert closed_at is not None, process.stderr.read()
    quit_s = time.monotonic() - closed_at
    print(f"closing the window to the process's exit: {quit_s:.1f} s")
    stderr = process.stderr.read()
    assert code == 0, stderr
    assert any("did not return from a forward pass within 1 s" in line for line in lines)
    assert "Endless forward did not stop" in stderr
    assert "QThread: Destroyed" not in stderr
    assert quit_s < 15  # it waited 30 s for the stuck thread, then aborted (134), before
