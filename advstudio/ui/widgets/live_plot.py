"""Live curves for training jobs: growing numpy buffers, redrawn at most ~10 times a second,
with clip-to-view and peak downsampling so they stay smooth with 100k+ points."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

REDRAW_MS = 100


class Series:
    """An append-only (x, y) buffer that doubles its capacity as it grows."""

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(capacity, np.float64)
        self._y = np.empty(capacity, np.float64)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self._x):
            self._x = np.resize(self._x, 2 * self.n)
            self._y = np.resize(self._y, 2 * self.n)
        self._x[self.n], self._y[self.n] = x, y
        self.n += 1

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def clear(self) -> None:
        self.n = 0


class LivePlot(QWidget):
    """A pyqtgraph plot of named series. ``add(name, x, y)`` is cheap; drawing is batched."""

    def __init__(self, title: str, y_label: str = "", x_label: str = "step",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg
        from PySide6.QtWidgets import QVBoxLayout

        self.plot = pg.PlotWidget(background="w", title=title)
        self.plot.setLabel("bottom", x_label)
        if y_label:
            self.plot.setLabel("left", y_label)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.addLegend(offset=(-5, 5), brush=(255, 255, 255, 210))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.series: dict[str, Series] = {}
        self.items: dict[str, object] = {}
        self._smoothers: dict[str, list[tuple[str, float, list[float]]]] = {}
        self._dirty = False
        self._timer = QTimer(self, interval=REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def add_curve(self, name: str, colour, width: float = 1.0, style=None,
                  symbol: str | None = None, smooth_of: str | None = None,
                  alpha: float = 0.02) -> None:
        """``smooth_of``: this curve is a bias-corrected exponential moving average (weight
        ``alpha``) of that one, updated as its points arrive (O(1) per point)."""
        import pyqtgraph as pg

        if smooth_of is not None:
            self._smoothers.setdefault(smooth_of, []).append((name, alpha, [0.0, 0.0]))
        pen = pg.mkPen(colour, width=width, **({"style": style} if style is not None else {}))
        self.series[name] = Series()
        self.items[name] = self.plot.plot([], [], pen=pen, name=name, symbol=symbol,
                                          symbolSize=5, symbolBrush=colour)

    def add(self, name: str, x: float, y: float) -> None:
        self.series[name].append(x, y)
        for smooth_name, alpha, state in self._smoothers.get(name, ()):
            state[0] = (1 - alpha) * state[0] + alpha * y
            state[1] = (1 - alpha) * state[1] + alpha
            self.series[smooth_name].append(x, state[0] / state[1])
        self._dirty = True

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        started = time.perf_counter()
        for name, s in self.series.items():
            self.items[name].setData(s.x, s.y)
        # adaptive: keep this plot under ~20 % of the UI thread however many points it holds
        spent_ms = (time.perf_counter() - started) * 1000
        self._timer.setInterval(max(REDRAW_MS, round(5 * spent_ms)))

    def clear(self) -> None:
        for s in self.series.values():
            s.clear()
        for smoothers in self._smoothers.values():
            for _name, _alpha, state in smoothers:
                state[:] = [0.0, 0.0]
        self._dirty = True
        self.redraw()

    def points(self, name: str) -> int:
        return self.series[name].n
