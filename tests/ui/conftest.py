from __future__ import annotations

import warnings
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, Qt, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def _no_modal_card_dialog(monkeypatch):
    """A card-less model file opens a modal dialog, which would hang a test: a test that means
    to answer it patches ``ModelCardDialog.ask`` itself; any other fails at once."""
    from advstudio.ui.widgets.model_card_dialog import ModelCardDialog

    def refuse(cls, *args, **kwargs):
        raise AssertionError("the model-card dialog opened; patch ModelCardDialog.ask")

    monkeypatch.setattr(ModelCardDialog, "ask", classmethod(refuse))


@pytest.fixture
def window(qtbot, settings):
    """The real main window, with PyTorch loaded and the default model ready."""
    from advstudio.ui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.state.model is not None, timeout=60_000)
    qtbot.waitUntil(lambda: _idle(w.jobs), timeout=30_000)  # e.g. the Attack tab's gradient check
    yield w
    w.jobs.shutdown()


def _idle(jobs) -> None:
    assert [w.title for w in jobs.active] == []


@pytest.fixture
def lab(qtbot):
    """A small app state for one tab built alone: PyTorch loaded, the CPU, no image, no model
    (``lab.use_model(key)`` loads one), a job manager recording into a run store (under the
    test's private ADVSTUDIO_HOME), as the window's does."""
    from advstudio.core.runs import RunStore
    from advstudio.ui.model_controller import ModelController
    from advstudio.ui.state import AppState
    from advstudio.workers import JobManager

    state = AppState()
    state.torch_loaded = True
    jobs = JobManager()
    jobs.store = RunStore.open()
    models = ModelController(state, jobs)

    def use_model(key: str = "digits-cnn") -> None:
        from advstudio.core.models.registry import load_model

        state.set_model(key, load_model(key, state.device))

    yield SimpleNamespace(state=state, jobs=jobs, models=models, use_model=use_model)
    jobs.shutdown()


# Where each lab tab's class lives (the one place to change when a tab module moves).
TAB_CLASSES = {
    "attack": ("advstudio.ui.attack.tab", "AttackTab"),
    "gan": ("advstudio.ui.gan.tab", "GanTab"),
    "playground": ("advstudio.ui.playground.tab", "PlaygroundTab"),
    "defence": ("advstudio.ui.defence.tab", "DefenceTab"),
    "poisoning": ("advstudio.ui.poisoning.tab", "PoisoningTab"),
    "runs": ("advstudio.ui.runs.tab", "RunsTab"),
}


@pytest.fixture
def build_tab(qtbot, lab, settings):
    """``build_tab("gan")``: that tab alone on ``lab``'s state, in a host widget as the window's
    tab holder has it (a tab is never a top-level window there), shown, closed at teardown."""
    import importlib

    from PySide6.QtWidgets import QVBoxLayout, QWidget

    hosts = []  # qtbot.addWidget keeps only a weak reference

    def build(name, size=(1180, 720)):
        module, cls = TAB_CLASSES[name]
        tab = getattr(importlib.import_module(module), cls)(
            lab.state, lab.jobs, lab.models, settings
        )
        host = QWidget()
        layout = QVBoxLayout(host)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(tab)
        qtbot.addWidget(host)
        hosts.append(host)
        host.resize(*size)
        host.show()
        return tab

    yield build


@pytest.fixture
def attack_alone(lab, build_tab, job_ended, digit_png):
    """The Attack tab alone, with the built-in CNN (gradients checked) and the test digit 7."""
    from advstudio.core.images import load_image

    tab = build_tab("attack")
    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.use_model("digits-cnn")
    lab.state.set_image(load_image(digit_png))
    return tab


class _FirstJob(QObject):
    finished = Signal()


@pytest.fixture
def job_ended(qtbot):
    """``with job_ended(jobs) as ended: <start a job>``: waits (``waitSignal``, entered before
    the block) for the ``finished`` of the first job started inside the block whose title
    starts with ``title``; ``ended.worker`` is that job's worker."""

    @contextmanager
    def wait(jobs, timeout=10_000, title=""):
        first = _FirstJob()
        first.worker = None

        def on_start(worker):
            if first.worker is None and worker.title.startswith(title):
                first.worker = worker
                worker.finished.connect(first.finished)  # queued events: none is missed

        jobs.job_started.connect(on_start)
        try:
            with qtbot.waitSignal(first.finished, timeout=timeout):
                yield first
        finally:
            jobs.job_started.disconnect(on_start)

    return wait


def drop_files(widget, *paths) -> bool:
    """Simulate dragging files from a file manager and dropping them on ``widget``."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    with warnings.catch_warnings():  # PySide6 marks the only QPoint constructor deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            QPoint(50, 50),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()
