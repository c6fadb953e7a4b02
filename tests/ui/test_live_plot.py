"""LivePlot: smoothing, and the view range that grows in steps instead of on every point."""

from __future__ import annotations

import math

import pytest

from advstudio.ui.widgets.live_plot import LivePlot, grown_range, nice_ceiling


@pytest.mark.parametrize("value, expected", [(1, 1), (1.1, 2), (3, 5), (7, 10), (0.03, 0.05),
                                             (120, 200), (5000, 5000), (0, 1)])
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == pytest.approx(expected)


def test_grown_range_grows_only_on_overflow_and_only_on_that_side():
    first = grown_range(None, 1.0, 3.0)
    assert first == pytest.approx((0.5, 3.5))  # a quarter of the span each side
    assert grown_range(first, 1.2, 3.4) is None  # inside: the axes stay still
    grown = grown_range(first, 1.0, 5.0)
    assert grown[0] == first[0] and grown[1] == pytest.approx(6.0)
    assert grown_range(None, 2.0, 2.0) == pytest.approx((1.5, 2.5))  # flat data


@pytest.fixture
def plot(qtbot):
    p = LivePlot("Losses", "BCE")
    qtbot.addWidget(p)
    p.add_curve("loss", (31, 119, 180))
    p.add_curve("loss (smoothed)", (31, 119, 180), smooth_of="loss", alpha=0.5)
    return p


def _ranges(p):
    (x0, x1), (y0, y1) = p.plot.getViewBox().viewRange()
    return (x0, x1), (y0, y1)


def test_the_view_follows_the_data_in_steps(plot):
    moves = 0
    last = None
    ys = []
    for step in range(1, 201):
        ys.append(1.0 + 0.5 * math.sin(step / 7))
        plot.add("loss", step, ys[-1])
        plot.redraw_now()
        now = _ranges(plot)
        moves += now != last
        last = now
        (x0, x1), (y0, y1) = now
        assert x0 <= 1 and step < x1 and y0 <= min(ys) and max(ys) <= y1
    assert moves < 15  # 200 points, a handful of axis changes
    # the smoothed curve is a bias-corrected EMA: its first point equals the first raw point
    assert plot.series["loss (smoothed)"].y[0] == plot.series["loss"].y[0]


def test_fixed_y_range_and_manual_zoom_stop_following(plot):
    plot.set_y_range(0, 1)
    for step in range(50):
        plot.add("loss", step, 5.0)
    plot.redraw_now()
    assert _ranges(plot)[1] == pytest.approx((0, 1))
    assert _ranges(plot)[0][1] >= 49  # x still follows

    plot.plot.getViewBox().sigRangeChangedManually.emit([True, True])  # as a mouse zoom does
    plot.plot.setXRange(10, 20, padding=0)
    for step in range(50, 500):
        plot.add("loss", step, 5.0)
    plot.redraw_now()
    assert _ranges(plot)[0] == pytest.approx((10, 20))  # the user's view is kept

    plot.plot.getViewBox().enableAutoRange()  # pyqtgraph's "A" button
    plot.add("loss", 500, 5.0)
    plot.redraw_now()
    assert _ranges(plot)[0][1] >= 500 and not any(plot.plot.getViewBox().autoRangeEnabled())


def test_plots_take_turns_to_redraw_one_per_tick(qtbot, monkeypatch):
    """Plots that come due together are redrawn on successive ticks, never in one burst (their
    repaints back to back froze the window for 35-60 ms while a DCGAN trained)."""
    from advstudio.ui.widgets import live_plot

    scheduler = live_plot.RedrawScheduler.instance()
    plots = []
    for k in range(3):
        p = LivePlot(f"plot {k}")
        qtbot.addWidget(p)
        p.add_curve("y", (0, 0, 0))
        p.add("y", 0.0, float(k))
        plots.append(p)
    clock = [1000.0]
    monkeypatch.setattr(live_plot.time, "monotonic", lambda: clock[0])
    drawn = []
    for p in plots:
        monkeypatch.setattr(p, "redraw", lambda p=p: (drawn.append(p), setattr(p, "_dirty", False),
                                                      setattr(p, "_last_redraw", clock[0])))
    for _ in range(3):
        scheduler.tick()
    mine = [p for p in drawn if p in plots]
    assert len(mine) == 3 and set(map(id, mine)) == {id(p) for p in plots}  # each once, in turn

    for p in plots:  # new points at once: too soon for another redraw
        p._dirty = True
    clock[0] += live_plot.REDRAW_MS / 1000 / 2
    scheduler.tick()
    assert [p for p in drawn if p in plots] == mine
    clock[0] += live_plot.REDRAW_MS / 1000
    scheduler.tick()
    assert len([p for p in drawn if p in plots]) == 4


def test_a_slow_redraw_stretches_the_shared_tick(qtbot, monkeypatch):
    from advstudio import responsiveness
    from advstudio.ui.widgets import live_plot

    scheduler = live_plot.RedrawScheduler.instance()
    p = LivePlot("slow")
    qtbot.addWidget(p)
    p.add_curve("y", (0, 0, 0))
    p.add("y", 0.0, 1.0)
    p._last_redraw = -1e9
    ticks = iter([0.0, 0.040])  # a 40 ms redraw
    monkeypatch.setattr(live_plot.time, "perf_counter", lambda: next(ticks, 0.040))
    for other in scheduler._alive():
        if other is not p:
            monkeypatch.setattr(other, "_dirty", False)
    scheduler.tick()
    assert scheduler.timer.interval() == round(40 / responsiveness.REDRAW_BUDGET)  # 200 ms: 20 % of the thread
    scheduler.timer.setInterval(live_plot.TICK_MS)


def test_a_known_run_length_fixes_the_x_axis_until_the_data_outgrows_it(plot):
    plot.set_x_extent(0, 300)
    plot.redraw_now()
    extent = pytest.approx((-6, 306))  # 2 % padding: the last marker shows whole
    assert _ranges(plot)[0] == extent
    for step in range(0, 301, 10):
        plot.add("loss", step, 1.0)
        plot.redraw_now()
        assert _ranges(plot)[0] == extent  # still: progress towards the end
    plot.add("loss", 320, 1.0)  # resumed past the planned end: grows as usual
    plot.redraw_now()
    assert _ranges(plot)[0][1] > 320
    plot.clear()
    assert plot._x_extent is None


def test_non_negative_data_keeps_the_axis_at_zero_or_above(plot):
    for step, y in enumerate([0.1, 5.0, 0.2, 9.0]):
        plot.add("loss", step, y)
    plot.redraw_now()
    assert _ranges(plot)[1][0] == pytest.approx(0.0)
    assert grown_range(None, -1.0, 1.0)[0] < -1.0  # data below zero: head-room as usual


def test_the_legend_appears_with_the_second_curve(qtbot):
    p = LivePlot("one")
    qtbot.addWidget(p)
    p.add_curve("only", (0, 0, 0))
    assert not p.legend.isVisible()
    p.add_curve("second", (255, 0, 0))
    assert p.legend.isVisible()
