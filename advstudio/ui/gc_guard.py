"""Run Python's cyclic garbage collector on the UI thread only.

Python's GC runs in whichever thread happens to cross the allocation threshold. When that is a
job thread and the garbage holds Qt widgets (closed windows, dialogs, lambdas that keep them in
reference cycles), the widgets get destroyed on the job thread: against Qt's rules, and a
deadlock in PySide6 (the destructor waits for a Qt lock the UI thread holds while the UI thread
waits for the GIL). Seen in the test suite with PySide6 6.11. The usual cure for PyQt/PySide
apps with threads: switch automatic collection off and collect from a timer on the UI thread,
generation by generation as the thresholds say.

Once PyTorch, pyqtgraph and every tab are loaded, the heap holds millions of long-lived objects,
and each full collection walked them all: 120-170 ms of frozen window, every few seconds of a
training with live plots. :meth:`MainThreadGarbageCollector.freeze` moves what exists then into
CPython's permanent generation (``gc.freeze``), which collections skip: they then cost ~1 ms.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class MainThreadGarbageCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self, interval=interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                gc.collect(generation)
                return

    def freeze(self) -> None:
        """Collect once, then exempt every object alive now from later collections (call when
        start-up is over: the modules, models and widgets that stay for the whole session)."""
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """Collect everything now (on this thread) and give automatic collection back."""
        self.timer.stop()
        gc.unfreeze()
        gc.collect()
        if self._was_enabled:
            gc.enable()
