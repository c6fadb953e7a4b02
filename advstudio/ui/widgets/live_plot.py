"""Live curves for training jobs: growing numpy buffers, redrawn at most ~10 times a second,
with clip-to-view and peak downsampling so they stay smooth with 100k+ points.

Why the plots manage their own view range: pyqtgraph's auto-range moves the axes on every new
point, and a moved axis regenerates its tick labels and grid, which made each repaint cost about
5 ms of UI-thread time per plot (six plots on the GAN tab: a 30-130 ms stall). Here the range only
grows in steps (x to the next 1-2-5 number, y with a quarter of head-room) and the axes are cached
as pixmaps, so most repaints only redraw the curves (about 1.4 ms). Panning or zooming with the
mouse stops the following; pyqtgraph's "A" button resumes it.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGraphicsItem, QWidget

REDRAW_MS = 100


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (> 0)."""
    if value <= 0:
        return 1.0
    exponent = np.floor(np.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        candidate = mantissa * 10.0 ** exponent
        if candidate >= value * (1 - 1e-12):
            return float(candidate)
    return float(10.0 ** (exponent + 1))


def grown_range(current: tuple[float, float] | None, lo: float, hi: float,
                headroom: float = 0.25) -> tuple[float, float] | None:
    """A new (lo, hi) that holds the data [lo, hi], or None when ``current`` already does.

    Grows with ``headroom`` times the data span on the side that overflowed, so a slowly
    drifting curve moves the axis every few dozen points rather than on every point.
    """
    if current is not None and current[0] <= lo and hi <= current[1]:
        return None
    span = hi - lo
    if span <= 0:
        span = abs(hi) if hi else 1.0
    pad = headroom * span
    new_lo = lo - pad if current is None or lo < current[0] else current[0]
    new_hi = hi + pad if current is None or hi > current[1] else current[1]
    return new_lo, new_hi


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
        for side in ("left", "bottom"):  # repainted only when the range changes (see above)
            self.plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        view = self.plot.getViewBox()
        view.disableAutoRange()
        view.sigRangeChangedManually.connect(self._stop_following)
        self.follow_x = self.follow_y = True
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
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

    def set_y_range(self, lo: float, hi: float) -> None:
        """Fix the y axis (e.g. probabilities in [0, 1]); x keeps following the data."""
        self.follow_y = False
        self.plot.setYRange(lo, hi, padding=0)

    def _stop_following(self, *_args) -> None:
        self.follow_x = self.follow_y = False

    def _follow(self) -> None:
        """Grow the view to the data; hand back to us after pyqtgraph's auto-range button."""
        view = self.plot.getViewBox()
        auto_x, auto_y = view.autoRangeEnabled()
        if auto_x or auto_y:  # the user pressed "A": resume following, cheaply
            view.disableAutoRange()
            self.follow_x = self.follow_x or bool(auto_x)
            self.follow_y = self.follow_y or bool(auto_y)
            if auto_x:
                self._x_range = None
            if auto_y:
                self._y_range = None
        filled = [s for s in self.series.values() if s.n]
        if not filled:
            return
        if self.follow_x:
            x_lo = min(float(s.x[0]) for s in filled)
            x_hi = max(float(s.x[-1]) for s in filled)
            if self._x_range is None or x_hi >= self._x_range[1] or x_lo < self._x_range[0]:
                span = x_hi - x_lo if x_hi > x_lo else (abs(x_hi) or 1.0)
                upper = x_lo + nice_ceiling(span * 1.25)
                self._x_range = (x_lo, upper)
                self.plot.setXRange(*self._x_range, padding=0)
        if self.follow_y:
            finite = [s.y[np.isfinite(s.y)] for s in filled]
            finite = [f for f in finite if f.size]
            if finite:
                y_lo = min(float(f.min()) for f in finite)
                y_hi = max(float(f.max()) for f in finite)
                grown = grown_range(self._y_range, y_lo, y_hi)
                if grown is not None:
                    self._y_range = grown
                    self.plot.setYRange(*grown, padding=0)

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
        self._follow()
        # adaptive: keep this plot under ~20 % of the UI thread however many points it holds
        spent_ms = (time.perf_counter() - started) * 1000
        self._timer.setInterval(max(REDRAW_MS, round(5 * spent_ms)))

    def redraw_now(self) -> None:
        """Draw pending points at once (tests, and before a screenshot)."""
        self._dirty = True
        self.redraw()

    def clear(self) -> None:
        for s in self.series.values():
            s.clear()
        for smoothers in self._smoothers.values():
            for _name, _alpha, state in smoothers:
                state[:] = [0.0, 0.0]
        self._x_range = None
        if self.follow_y:
            self._y_range = None
        self._dirty = True
        self.redraw()

    def points(self, name: str) -> int:
        return self.series[name].n
