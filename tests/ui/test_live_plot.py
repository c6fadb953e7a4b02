"""LivePlot: smoothing, and the view range that grows in steps instead of on every point."""

from __future__ import annotations

import math

import pytest

from advstudio.ui.widgets.live_plot import LivePlot, grown_range


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
    assert moves < 20  # 200 points: about 13 x moves (half a span each) and a few y moves
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
        monkeypatch.setattr(
            p,
            "redraw",
            lambda p=p: (
                drawn.append(p),
                setattr(p, "_dirty", False),
                setattr(p, "_last_redraw", clock[0]),
            ),
        )
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
    assert scheduler.timer.interval() == round(
        40 / responsiveness.REDRAW_BUDGET
    )  # 200 ms: 20 % of the thread
    scheduler.timer.setInterval(live_plot.TICK_MS)


def test_x_fits_the_data_and_the_planned_end_is_a_faint_marker(plot):
    plot.set_x_extent(0, 3000)
    for step in range(0, 101, 10):
        plot.add("loss", step, 1.0)
    plot.redraw_now()
    (x0, x1), _ = _ranges(plot)
    assert x0 <= 0 and 100 < x1 <= 150  # the data fills 2/3 of the axis or more, not 1/30
    assert plot.planned_end == 3000 and plot.end_marker.pen.color().alpha() < 100
    plot.clear()
    assert plot.planned_end is None


def test_a_single_point_is_padded_on_both_sides(plot):
    plot.add("loss", 7, 0.5)
    plot.redraw_now()
    (x0, x1), (y0, y1) = _ranges(plot)
    assert x0 < 7 < x1 and 7 - x0 == pytest.approx(x1 - 7)
    assert y0 < 0.5 < y1


def _scene_rect_of_data(p):
    """The data's bounding box in scene coordinates."""
    from PySide6.QtCore import QRectF

    xs = [x for s in p.series.values() for x in s.x]
    ys = [y for s in p.series.values() for y in s.y]
    view = p.plot.getViewBox()
    return view.mapViewToScene(
        QRectF(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    ).boundingRect()


def test_the_legend_has_swatches_off_the_data(qtbot):
    p = LivePlot("two", "loss")
    qtbot.addWidget(p)
    p.add_curve("D loss", (31, 119, 180))
    p.add_curve("G loss", (214, 39, 40))
    for step in range(50):
        p.add("D loss", step, 0.5 + step / 50)
        p.add("G loss", step, 2.0 - step / 50)
    p.resize(*p.minimumSize().toTuple())
    p.show()
    qtbot.waitExposed(p)
    p.redraw_now()
    legend = p.legend
    assert [label.text for _sample, label in legend.items] == ["D loss", "G loss"]
    assert legend.brush().color().alpha() < 255  # translucent
    assert not legend.sceneBoundingRect().intersects(_scene_rect_of_data(p))
    assert p.width() >= 180 and p.height() >= 150


def test_the_hover_readout_shows_the_nearest_points_values(qtbot):
    from PySide6.QtCore import QPointF

    p = LivePlot("two", "loss")
    qtbot.addWidget(p)
    p.add_curve("D loss", (31, 119, 180))
    p.add_curve("G loss", (214, 39, 40))
    for step, (d, g) in enumerate([(0.7, 1.5), (0.6, 1.9), (0.4, 2.5)]):
        p.add("D loss", step * 10, d)
        p.add("G loss", step * 10, g)
    p.resize(400, 300)
    p.show()
    qtbot.waitExposed(p)
    p.redraw_now()
    view = p.plot.getViewBox()
    scene_pos = view.mapViewToScene(QPointF(11.5, 1.0))  # nearest step: 10
    qtbot.mouseMove(p.plot.viewport(), p.plot.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: p.readout.text().startswith("step 10:"))
    assert p.readout.text() == "step 10:  D loss 0.6,  G loss 1.9"


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


def test_the_sweep_plots_legend_is_off_its_curves(qtbot, settings):
    from types import SimpleNamespace

    from PySide6.QtCore import QRectF

    from advstudio.ui.attack.sweep_panel import SweepPanel
    from advstudio.ui.state import AppState
    from advstudio.workers import JobManager

    panel = SweepPanel(AppState(), JobManager(), settings)
    qtbot.addWidget(panel)
    panel.resize(640, 300)
    panel.show()
    qtbot.waitExposed(panel)
    eps = [0.0, 0.1, 0.2, 0.3]
    curves = {
        name: SimpleNamespace(
            attack=name, epsilons=eps, accuracy=[1.0, 0.8, 0.5, 0.2], success=[0.0, 0.2, 0.5, 0.8]
        )
        for name in ("fgsm", "pgd")
    }
    panel.draw(SimpleNamespace(curves=curves, partial=False), final=True)
    assert len(panel.legend.items) == 4

    def data():
        return panel.plot.getViewBox().mapViewToScene(QRectF(0, 0, 0.3, 1.0)).boundingRect()

    qtbot.waitUntil(lambda: panel.legend.sceneBoundingRect().width() > 100)  # laid out
    legend = panel.legend.sceneBoundingRect()
    assert not legend.intersects(data()) and legend.top() >= data().bottom()
    assert legend.right() <= panel.plot.width()  # and inside the plot
