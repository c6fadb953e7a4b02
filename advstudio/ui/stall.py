"""Measure how long the UI thread's event loop stalls (for tests and benchmarks)."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer


class StallMeter(QObject):
    """A 5 ms timer on the UI thread; the worst gap between its ticks minus the interval is
    the worst stall a user would feel (a frozen window, a late repaint)."""

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_s = interval_ms / 1000
        self.worst_s = 0.0
        self.ticks = 0
        self._last: float | None = None
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.worst_s, self.ticks, self._last = 0.0, 0, time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._timer.stop()
        return self.worst_s

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.worst_s = max(self.worst_s, now - self._last - self.interval_s)
        self._last = now
        self.ticks += 1
