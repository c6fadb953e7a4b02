"""Guards against known-bad Qt binding releases (see pyproject's pin)."""

from __future__ import annotations

import sys

from PySide6 import QtCore, QtGui


def test_void_qpainter_calls_do_not_drop_references_to_none(qapp):
    """PySide6 6.12.0 on Python 3.11 decremented None's refcount on every void QPainter call;
    pyqtgraph's repaints then crash the app with 'deallocating None' within seconds."""
    img = QtGui.QImage(32, 32, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(img)
    pen = QtGui.QPen(QtGui.QColor(1, 2, 3))
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.setPen(pen)
        painter.drawLine(QtCore.QPointF(0, 0), QtCore.QPointF(5, 5))
        painter.save()
        painter.restore()
    painter.end()
    assert sys.getrefcount(None) >= before - 100


def test_garbage_is_collected_on_the_ui_thread_only(qapp):
    import gc
    import threading

    from advstudio.responsiveness import MainThreadGarbageCollector

    collected_on = []

    class Cyclic:
        def __init__(self):
            self.me = self

        def __del__(self):
            collected_on.append(threading.current_thread() is threading.main_thread())

    guard = MainThreadGarbageCollector()
    try:
        assert not gc.isenabled()
        Cyclic()
        threading.Thread(target=lambda: [object() for _ in range(100_000)]).start()
        assert collected_on == []  # the allocation burst on another thread collected nothing
        guard.threshold = (0, 0, 0)
        guard.check()
        assert collected_on == [True]
    finally:
        guard.stop()
    assert gc.isenabled()


def test_freezing_the_start_up_heap_makes_full_collections_skip_it(qapp):
    """What a full collection walks (``gc.get_objects()``) loses the frozen start-up heap and
    gets it back on stop(); garbage made after the freeze is still collected. (The time this
    saves is in benchmarks/bench_responsiveness.py.)"""
    import gc
    import weakref

    from advstudio.responsiveness import MainThreadGarbageCollector

    class Cyclic:
        def __init__(self):
            self.me = self

    guard = MainThreadGarbageCollector()
    keep = [[i] for i in range(1000)]  # long-lived objects, as after start-up
    probe = {id(keep[0]), id(keep[-1])}
    try:
        assert probe <= {id(o) for o in gc.get_objects()}
        guard.freeze()
        assert gc.get_freeze_count() >= len(keep)
        walked = {id(o) for o in gc.get_objects()}
        assert not probe & walked
        assert len(walked) < gc.get_freeze_count() / 10
        later = weakref.ref(Cyclic())
        assert later() is not None  # a cycle: only the collector frees it
        gc.collect()
        assert later() is None
    finally:
        guard.stop()
    assert gc.get_freeze_count() == 0  # stop() hands every object back to the collector
    assert probe <= {id(o) for o in gc.get_objects()}
    del keep


def test_labs_ready_comes_once_every_lab_tab_is_built(qtbot, settings):
    """The app freezes the heap on this signal (app.py), so it must come after the last tab."""
    from advstudio.ui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    built = []
    w.labs_ready.connect(
        lambda: built.append(
            all(
                t is not None
                for t in (
                    w.attack_tab,
                    w.gan_tab,
                    w.playground_tab,
                    w.defence_tab,
                    w.poisoning_tab,
                    w.runs_tab,
                )
            )
        )
    )
    with qtbot.waitSignal(w.labs_ready, timeout=60_000):
        w.show()
    assert built == [True]
    w.jobs.shutdown()
