"""Why the window stays responsive while jobs run: every anti-stall measure, in one place.

A job runs on its own thread, but the UI thread still shares the GIL, the CPU cores and the
garbage collector with it. Each measure below answers one stall that was measured with
``benchmarks/bench_ui.py`` (a DCGAN training with live plots on a 2-core machine; the worst gap
in a 5 ms timer's ticks, see ``ui/stall.py``) or ``benchmarks/bench_playground.py``. Together
they took the worst stall from 134 ms to 14-27 ms (README, "Speed").

1. **Garbage collection on the UI thread only** (:class:`MainThreadGarbageCollector`). Python's
   GC runs in whichever thread crosses the allocation threshold. When that is a job thread and
   the garbage holds Qt widgets (closed dialogs, lambdas keeping them in reference cycles), the
   widgets are destroyed on the job thread: against Qt's rules, and a deadlock in PySide6 (the
   destructor waits for a Qt lock the UI thread holds while the UI thread waits for the GIL),
   seen in the test suite with PySide6 6.11. So automatic collection is off and a timer on the
   UI thread collects, generation by generation as the thresholds say.
2. **The start-up heap frozen out of the collector** (:meth:`MainThreadGarbageCollector.freeze`,
   called once every tab is built). PyTorch, pyqtgraph and the tabs leave millions of long-lived
   objects, and each full collection walked them all: 120-170 ms of frozen window every few
   seconds of a training. ``gc.freeze`` moves them into the permanent generation, which
   collections skip: they then cost about 1 ms.
3. **A redraw budget for live plots** (:data:`REDRAW_MS`, :data:`TICK_MS`, :data:`REDRAW_BUDGET`,
   used by ``widgets/live_plot.py``'s shared scheduler). One timer redraws one dirty plot per
   tick, each plot at most every ``REDRAW_MS``, and the tick stretches so plots take at most
   ``REDRAW_BUDGET`` of the UI thread. With a timer per plot the six GAN plots repainted back to
   back: 40-60 ms; taking turns, the worst gap is one plot's repaint (25-33 ms, then 17-27 ms
   once a cleared plot waits for its turn too).
4. **Job threads at a lower CPU priority** (:data:`JOB_NICENESS`, :func:`prepare_job_thread`;
   Linux only). Qt's thread priorities do nothing under Linux's default scheduler; a per-thread
   nice value lets the UI thread win the CPU when a job competes with it.
5. **A core left for the window** (``core.devices.leave_a_core_for_the_window``, called by
   :func:`prepare_job_thread`). A training on both cores of a 2-core machine froze the window
   for 70-130 ms at a time; with one intra-op thread fewer than there are cores, under 50 ms.
   The setting belongs to the job's thread (PyTorch's OpenMP backend), so the UI thread and the
   headless CLI keep theirs.
6. **The playground on one thread** (``core.playground.model.one_thread``, around its job's
   steps and the tab's manual steps). Its tensors are tiny; OpenMP workers spinning for a
   descheduled sibling made a step up to a hundred times slower (9 ms for a 64-unit layer).
   With it the playground runs 365 steps/s live at 14.7 frames/s, worst stall 40 ms.

Measures 5 and 6 live in ``core`` because they are torch settings a core job applies; the
others are the UI's, here.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

from PySide6.QtCore import QObject, QTimer

GC_INTERVAL_MS = 500  # how often the UI thread looks whether a generation is due
REDRAW_MS = 100  # how often a live plot redraws, at most
TICK_MS = 25  # the shared redraw scheduler's tick: one plot redrawn per tick
REDRAW_BUDGET = 0.2  # the share of the UI thread live plots may take (the tick stretches)
JOB_NICENESS = 5  # how much less CPU priority a job thread has than the window's (Linux)


class MainThreadGarbageCollector(QObject):
    """Measures 1 and 2: collect on the UI thread, from a timer; :meth:`freeze` after start-up."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = GC_INTERVAL_MS) -> None:
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


def prepare_job_thread() -> None:
    """Measures 4 and 5, on the calling job thread (the worker calls it first thing)."""
    _lower_this_threads_priority()
    if "torch" in sys.modules:  # not while PyTorch itself is being imported
        from advstudio.core.devices import leave_a_core_for_the_window

        leave_a_core_for_the_window()


def _lower_this_threads_priority() -> None:
    if not hasattr(os, "setpriority") or sys.platform != "linux":
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + JOB_NICENESS)
    except OSError:
        pass  # not allowed here: jobs keep the window's priority
