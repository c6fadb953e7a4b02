"""Live curves for training jobs: growing numpy buffers, redrawn at most ~10 times a second,
with clip-to-view and peak downsampling so they stay smooth with 100k+ points.

Why the plots manage their own view range: pyqtgraph's auto-range moves the axes on every new
point, and a moved axis regenerates its tick labels and grid, which made each repaint cost about
5 ms of UI-thread time per plot (six plots on the GAN tab: a 30-130 ms stall). Here the range only
grows in steps (x to the next 1-2-5 number, y with a quarter of head-room) and the axes are cached
as pixmaps, so most repaints only redraw the curves (about 1.4 ms). Panning or zooming with the
mouse stops the following; pyqtgraph's "A" button resumes it.

Why one timer redraws every plot, one plot per tick: with a timer each, the plots of a tab
(started together, same interval) came due in the same pass of the event loop, and their
repaints (5-10 ms each when an axis moves) ran back to back, with no input or timer event
between them: a 35-60 ms stall a few times a minute while a DCGAN trained. Taking turns, the
worst gap is one plot's repaint, and a plot still redraws ~10 times a second when four are live.

Why the legend sits under the view (:func:`legend_below`): inside it, a corner legend hid the
curves' latest points (the ones a user watches) and fixed y ranges left it no free corner; beside
it, it took a third of a narrow plot's width (the GAN tab's six plots side by side).
Why x fits the data with the planned end as a faint line: an axis spanning all the planned steps
squeezed the first minutes of a long training into a sliver at the left.
"""

from __future__ import annotations

import functools
import time
import weakref

import numpy as np
import shiboken6
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsItem, QLabel, QSizePolicy, QWidget

from advstudio.responsiveness import REDRAW_BUDGET, REDRAW_MS, TICK_MS
from advstudio.ui.widgets.plot_theme import PlotColours, themed

X_HEADROOM = 0.5  # x grows by half the data's span past the edge: data fills 2/3 or more, and
# the axis moves about log(n) / log(1.5) times in n points (a move costs a repaint)
SINGLE_POINT_PAD = 0.5  # x either side of a lone point (in steps), so it is not on the edge
MINIMUM_PLOT_SIZE = (180, 150)  # below this the tick labels crowd the curves out; three fit
# side by side beside the GAN tab's controls in a 1280-px window


@functools.cache
def _legend_class():
    """pyqtgraph's LegendItem, sized and placed by the plot's layout (its own ``updateSize``
    moved it to (0, 0) of its parent, over the axis, whenever an entry was added), hidden while
    empty, and as many entries a row as the plot's width holds (a fixed count made the GAN
    tab's narrow plots wider than their place, so they were cut off)."""
    import pyqtgraph as pg

    class LaidOutLegend(pg.LegendItem):
        def updateSize(self) -> None:  # noqa: N802 - pyqtgraph override
            self.setVisible(bool(self.items))
            self.fit(self.parentItem().width() if self.parentItem() else 0)
            self.updateGeometry()

        def fit(self, width: float) -> None:
            if not self.items or width <= 0:
                return
            widest = max(label.item.boundingRect().width() for _s, label in self.items) + 50
            columns = max(1, min(len(self.items), int((width - 60) // widest)))
            if columns != self.columnCount:
                self.setColumnCount(columns)  # calls updateSize again, with this count

    return LaidOutLegend


def legend_below(plot_widget, columns: int = 3):
    """A legend of colour swatches on a translucent background, in its own row under the x
    axis (so never over the data), ``columns`` entries a row; curves plotted with a ``name``
    join it."""
    item = plot_widget.getPlotItem()
    legend = _legend_class()(
        brush=(255, 255, 255, 200),
        pen=(0, 0, 0, 60),
        labelTextColor=(40, 40, 40),
        labelTextSize="8pt",
        colCount=columns,
    )
    # the plot's width decides, not the legend's: a label too long for a narrow plot is cut
    legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    legend.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
    legend.setMinimumWidth(0)  # else its entries' layout sets the plot's minimum width
    # rows 0-3: title, top axis, view, bottom axis; spanning the left axis's column too, so a
    # narrow plot's longest entry ("D(G(z)) before G step" at 1280×720) is not cut
    item.layout.addItem(legend, 4, 0, 1, 3)
    item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignHCenter)
    item.geometryChanged.connect(lambda: legend.fit(item.width()))
    item.legend = legend  # what PlotItem.plot(name=...) adds to
    return legend


def grown_range(
    current: tuple[float, float] | None, lo: float, hi: float, headroom: float = 0.25
) -> tuple[float, float] | None:
    """A new (lo, hi) that holds the data [lo, hi], or None when ``current`` already does.

    Grows with ``headroom`` times the data span on the side that overflowed, so a slowly
    drifting curve moves the axis every few dozen points rather than on every point. Data that
    never goes below zero keeps the axis at zero or above.
    """
    if current is not None and current[0] <= lo and hi <= current[1]:
        return None
    span = hi - lo
    if span <= 0:
        span = abs(hi) if hi else 1.0
    pad = headroom * span
    new_lo = lo - pad if current is None or lo < current[0] else current[0]
    new_hi = hi + pad if current is None or hi > current[1] else current[1]
    if lo >= 0:  # losses, norms, distances: no head-room below zero
        new_lo = max(new_lo, 0.0)
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


class RedrawScheduler:
    """Redraws dirty live plots one per tick, taking turns (see the module's docstring).

    A plot waits at least ``REDRAW_MS`` between its redraws, and the tick stretches to
    ``spent / REDRAW_BUDGET`` after a slow redraw (100k-point curves), so live plots never take more
    than about a fifth of the UI thread, however many there are and however long their curves.
    """

    _instance: RedrawScheduler | None = None

    def __init__(self) -> None:
        self._plots: list[weakref.ref[LivePlot]] = []
        self._next = 0
        self.timer = QTimer(QApplication.instance(), interval=TICK_MS)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    @classmethod
    def instance(cls) -> RedrawScheduler:
        if cls._instance is None or not shiboken6.isValid(cls._instance.timer):
            cls._instance = cls()
        return cls._instance

    def register(self, plot: LivePlot) -> None:
        self._plots.append(weakref.ref(plot))

    def _alive(self) -> list[LivePlot]:
        alive = []
        for ref in self._plots:
            plot = ref()
            if plot is not None and shiboken6.isValid(plot):
                alive.append(plot)
        if len(alive) != len(self._plots):
            self._plots = [weakref.ref(p) for p in alive]
            self._next %= max(1, len(alive))
        return alive

    def tick(self) -> None:
        plots = self._alive()
        now = time.monotonic()
        for k in range(len(plots)):
            index = (self._next + k) % len(plots)
            plot = plots[index]
            if plot._dirty and now - plot._last_redraw >= REDRAW_MS / 1000:
                self._next = index + 1
                started = time.perf_counter()
                plot.redraw()
                spent_ms = (time.perf_counter() - started) * 1000
                self.timer.setInterval(max(TICK_MS, round(spent_ms / REDRAW_BUDGET)))
                return


class LivePlot(QWidget):
    """A pyqtgraph plot of named series. ``add(name, x, y)`` is cheap; drawing is batched
    (:class:`RedrawScheduler`); :meth:`redraw_now` draws at once."""

    def __init__(
        self, title: str, y_label: str = "", x_label: str = "step", parent: QWidget | None = None
    ) -> None:
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
        self.legend = legend_below(self.plot)
        self.legend.hide()  # shown from the second curve on: one curve needs no key
        self.setMinimumSize(*MINIMUM_PLOT_SIZE)
        for side in ("left", "bottom"):  # repainted only when the range changes (see above)
            self.plot.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        view = self.plot.getViewBox()
        view.disableAutoRange()
        view.sigRangeChangedManually.connect(self._stop_following)
        self.follow_x = self.follow_y = True
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
        self.end_marker = pg.InfiniteLine(
            angle=90,
            movable=False,
            label="planned end",
            pen=pg.mkPen((0, 0, 0, 60), style=Qt.PenStyle.DashLine),
            labelOpts={"position": 0.95, "color": (0, 0, 0, 110)},
        )
        self.end_marker.hide()
        self.plot.addItem(self.end_marker, ignoreBounds=True)
        self.readout = QLabel(" ")  # the values under the mouse pointer
        self.plot.scene().sigMouseMoved.connect(self._hover)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)
        self.series: dict[str, Series] = {}
        self.items: dict[str, object] = {}
        self._smoothers: dict[str, list[tuple[str, float, list[float]]]] = {}
        self._dirty = False
        self._last_redraw = 0.0
        RedrawScheduler.instance().register(self)
        themed(self.plot, self._recolour)

    def _recolour(self, colours: PlotColours) -> None:
        """The theme's colours for what :func:`~advstudio.ui.widgets.plot_theme.style_plot`
        does not know: the planned-end line and the hover read-out."""
        import pyqtgraph as pg

        self.end_marker.setPen(pg.mkPen(colours.faint, style=Qt.PenStyle.DashLine))
        self.end_marker.label.setColor(colours.faint[:3] + (110,))
        self.readout.setStyleSheet(f"color: {colours.readout};")

    def add_curve(
        self,
        name: str,
        colour,
        width: float = 1.0,
        style=None,
        symbol: str | None = None,
        smooth_of: str | None = None,
        alpha: float = 0.02,
        legend: str | None = None,
    ) -> None:
        """``smooth_of``: this curve is a bias-corrected exponential moving average (weight
        ``alpha``) of that one, updated as its points arrive (O(1) per point). ``legend``: its
        text in the legend (default ``name``; ``""``: not in the legend, e.g. the second
        quantity of a run whose colour is named once)."""
        import pyqtgraph as pg

        if smooth_of is not None:
            self._smoothers.setdefault(smooth_of, []).append((name, alpha, [0.0, 0.0]))
        pen = pg.mkPen(colour, width=width, **({"style": style} if style is not None else {}))
        self.series[name] = Series()
        self.items[name] = self.plot.plot(
            [],
            [],
            pen=pen,
            name=name if legend is None else (legend or None),
            symbol=symbol,
            symbolSize=5,
            symbolBrush=colour,
        )
        self.legend.setVisible(len(self.items) > 1)

    def remove_curves(self) -> None:
        """Remove every curve (and its legend entry): the plot is empty, ready for others."""
        for item in self.items.values():
            self.legend.removeItem(item)
            self.plot.removeItem(item)
        self.series.clear()
        self.items.clear()
        self._smoothers.clear()
        self.clear()
        self.legend.hide()

    def legend_labels(self) -> list[str]:
        """The legend's entries, in order."""
        return [label.text for _sample, label in self.legend.items]

    def set_y_range(self, lo: float, hi: float) -> None:
        """Fix the y axis (e.g. probabilities in [0, 1]); x keeps following the data."""
        self.follow_y = False
        self.plot.setYRange(lo, hi, padding=0)

    def follow_y_range(self) -> None:
        """Let y follow the data again after :meth:`set_y_range`."""
        self.follow_y = True
        self._y_range = None
        self._dirty = True

    def set_x_extent(self, lo: float, hi: float) -> None:
        """Mark ``hi``, a training's planned last step, with a faint line (the x axis still
        fits the data; ``lo`` is kept for the callers' symmetry). :meth:`clear` hides it."""
        del lo
        self.end_marker.setValue(float(hi))
        self.end_marker.show()

    @property
    def planned_end(self) -> float | None:
        return float(self.end_marker.value()) if self.end_marker.isVisible() else None

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
            if x_hi == x_lo:  # one point (or one step): in the middle, not on the edge
                self._show_x((x_lo - SINGLE_POINT_PAD, x_hi + SINGLE_POINT_PAD))
            elif self._x_range is None or x_hi >= self._x_range[1] or x_lo < self._x_range[0]:
                span = x_hi - x_lo
                self._show_x((x_lo - 0.02 * span, x_hi + X_HEADROOM * span))
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

    def _show_x(self, x_range: tuple[float, float]) -> None:
        """Move the x axis to ``x_range`` unless it is there already (a move re-lays it out)."""
        if self._x_range != x_range:
            self._x_range = x_range
            self.plot.setXRange(*x_range, padding=0)

    # -- hover read-out -----------------------------------------------------------------------
    def _hover(self, scene_pos: QPointF) -> None:
        view = self.plot.getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            self.readout.setText(" ")
            return
        self.readout.setText(self.values_near(view.mapSceneToView(scene_pos).x()) or " ")

    def values_near(self, x: float) -> str:
        """The x of the point nearest to ``x`` and every curve's value there (its nearest)."""
        filled = {name: s for name, s in self.series.items() if s.n}
        if not filled:
            return ""
        nearest = min((_nearest(s.x, x) for s in filled.values()), key=lambda v: abs(v - x))
        values = []
        for name, s in filled.items():
            i = int(np.argmin(np.abs(s.x - nearest)))
            if s.x[i] == nearest:  # curves without a point there (sparser ones) are left out
                values.append(f"{name} {s.y[i]:.4g}")
        return f"{self.plot.getAxis('bottom').labelText or 'x'} {nearest:g}:  " + ",  ".join(values)

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
        self._last_redraw = time.monotonic()
        for name, s in self.series.items():
            self.items[name].setData(s.x, s.y)
        self._follow()

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
        self.end_marker.hide()
        if self.follow_y:
            self._y_range = None
        self._dirty = True  # emptied on screen by the next redraw: the plots take turns

    def points(self, name: str) -> int:
        return self.series[name].n


def _nearest(xs: np.ndarray, x: float) -> float:
    """The value of ``xs`` (ascending, as steps are) nearest to ``x``."""
    i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)) if len(xs) > 1 else 0
    if len(xs) > 1 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
        i -= 1
    return float(xs[i])
