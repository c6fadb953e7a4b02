"""The window as a user meets it (issue #19): the GAN tab's plots at 1280×720 keep their minimum
size, whole titles and legends off the data; the status bar names the running job's phase;
the dark theme gives plots dark backgrounds with readable text."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QPoint, QRect, QRectF

from advstudio.core.jobs import Metrics, Progress


def _gan_metrics(step: int) -> Metrics:
    values = {
        "loss_d": 1.3 - step / 200,
        "loss_g": 0.7 + step / 100,
        "d_x": 0.5 + step / 300,
        "d_g_z1": 0.5 - step / 300,
        "d_g_z2": 0.45 - step / 400,
        "grad_norm_d": 2.0 + (step % 7) / 7,
        "grad_norm_g": 1.0 + (step % 5) / 5,
        "diversity": 8.0 - step / 50,
    }
    return Metrics(step, values)


def _data_rect(plot) -> QRectF:
    """The scene rectangle of every point of ``plot`` (a LivePlot)."""
    xs = [x for s in plot.series.values() for x in s.x]
    ys = [y for s in plot.series.values() for y in s.y]
    view = plot.plot.getViewBox()
    return view.mapViewToScene(
        QRectF(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    ).boundingRect()


def test_the_gan_tab_at_1280x720_keeps_plot_minimums_whole_titles_and_legends_off_data(
    qtbot, window
):
    window.resize(1280, 720)
    window.tabs.setCurrentWidget(window.gan_host)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720), timeout=5000)
    tab = window.gan_tab
    tab._new_run(tab.config())  # what Train does before the first metrics (the run's curves)
    for step in range(0, 121):
        tab._on_metrics(_gan_metrics(step))
    for step in (0, 60, 120):
        tab._on_metrics(
            Metrics(
                step,
                {"classes_covered": 4 + step / 30, "frechet": 300 - step, "class_entropy": 1.5},
            )
        )
    plots = [tab.loss_plot, tab.d_plot, tab.grad_plot, tab.div_plot, tab.cover_plot, tab.fid_plot]
    for p in plots:
        p.redraw_now()
    qtbot.wait(50)  # the legends re-lay out when their columns change
    for p in plots:
        title = p.plot.getPlotItem().titleLabel
        name = title.text
        # no plot narrower (or lower) than its minimum, and none cut off by the window
        assert p.width() >= p.minimumWidth() and p.height() >= p.minimumHeight(), name
        host = window.gan_host
        placed = QRect(p.mapTo(host, QPoint(0, 0)), p.size())
        assert host.rect().contains(placed), name
        # the title's text, unclipped, lies inside the title row and inside the plot
        text = title.item.mapRectToScene(title.item.boundingRect())
        row = title.sceneBoundingRect()
        assert text.width() <= row.width() + 0.5, name
        assert text.left() >= row.left() - 0.5 and text.right() <= row.right() + 0.5, name
        assert text.left() >= 0 and text.right() <= p.plot.viewport().width(), name
        # the legend (every plot with two curves or more) holds every entry, off the data
        legend = p.legend
        if len(p.items) > 1:
            assert legend.isVisible() and len(legend.items) == len(p.items), name
            box = legend.sceneBoundingRect()
            assert not box.intersects(_data_rect(p)), name
            assert box.left() >= 0 and box.right() <= p.plot.viewport().width(), name
            assert box.bottom() <= p.plot.viewport().height(), name
            for _sample, label in legend.items:  # each label whole inside the legend
                shown = label.item.mapRectToScene(label.item.boundingRect())  # the text
                assert box.contains(shown.adjusted(1, 1, -1, -1)), (name, label.text)


def test_the_status_bar_shows_the_running_jobs_phase_count_and_eta(qtbot, window, job_ended):
    gate = threading.Event()

    def job():
        for step in range(1, 6):
            yield Progress(step, 5, f"epoch 1 of 1, step {step} of 5", "training")
        yield Progress(3, 10, "robust accuracy: 3 of 10 images", "evaluating on 10 held-out digits")
        gate.wait(20)  # held in the evaluation while the test looks
        return "done"

    indicator = window.job_indicator
    with job_ended(window.jobs, title="Defence: phases") as ended:
        worker = window.jobs.start(job, "Defence: phases")
        # the phase's first event passes the 20-a-second throttle: it follows 5 within 50 ms
        qtbot.waitUntil(
            lambda: indicator.eta.text().startswith("evaluating on 10 held-out digits — 3/10"),
            timeout=5000,
        )
        assert indicator.isVisible() and indicator.title.text() == "Defence: phases"
        assert indicator.bar.maximum() == 1000 and indicator.bar.value() == 300  # not 100 %
        assert "robust accuracy: 3 of 10 images" in indicator.bar.toolTip()
        assert indicator.pause_button.isVisible()
        gate.set()
    assert ended.worker is worker and worker.eta.rates.keys() <= {
        "training",
        "evaluating on 10 held-out digits",
    }


def test_a_job_that_cannot_pause_offers_no_pause(qtbot, window, job_ended):
    gate = threading.Event()

    def job():
        yield Progress(0, 0, "importing", "loading")
        gate.wait(20)

    indicator = window.job_indicator
    with job_ended(window.jobs, title="Import"):
        window.jobs.start(job, "Import", pausable=False)
        qtbot.waitUntil(lambda: indicator.eta.text() == "loading", timeout=5000)
        assert not indicator.pause_button.isVisibleTo(indicator)
        assert indicator.cancel_button.isVisibleTo(indicator)
        gate.set()


@pytest.fixture
def theme():
    from advstudio.ui.settings_dialog import apply_theme

    yield apply_theme
    apply_theme("system")  # the palette is the application's: leave it as found


def _lightness(colour) -> int:
    import pyqtgraph as pg

    return pg.mkColor(colour).lightness()


def test_the_dark_theme_gives_plots_dark_backgrounds_and_readable_text(qtbot, theme):
    from advstudio.ui.widgets.live_plot import LivePlot

    before = LivePlot("Losses", "loss")  # made under the light theme, recoloured live
    qtbot.addWidget(before)
    theme("dark")
    after = LivePlot("Gradient norms", "L2 norm")  # made under the dark theme
    qtbot.addWidget(after)
    for p in (before, after):
        p.add_curve("a", (31, 119, 180))
        p.add_curve("b", (214, 39, 40))
        for step in range(20):
            p.add("a", step, step / 20)
            p.add("b", step, 1 - step / 20)
        p.resize(400, 300)
        p.show()
        qtbot.waitExposed(p)
        p.redraw_now()
        item = p.plot.getPlotItem()
        background = p.plot.backgroundBrush().color()
        assert background.lightness() < 60
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            assert axis.textPen().color().lightness() > 170  # tick labels
            assert _lightness(axis.labelStyle["color"]) > 170  # axis titles
        assert _lightness(item.titleLabel.opts["color"]) > 170
        assert p.legend.brush().color().lightness() < 80
        assert all(label.opts["color"].lightness() > 170 for _s, label in p.legend.items)
        # what is drawn: the view's empty corner is dark, and the axes carry light text
        image = p.plot.grab().toImage()
        view = p.plot.getViewBox().sceneBoundingRect()
        corner = image.pixelColor(int(view.right()) - 3, int(view.top()) + 3)
        assert corner.lightness() < 60
        axis_strip = [
            image.pixelColor(x, y).lightness()
            for x in range(0, int(view.left()))
            for y in range(int(view.top()), int(view.bottom()))
        ]
        assert max(axis_strip) > 150  # tick labels light on dark
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    palette = QApplication.palette()  # disabled controls look disabled under the dark theme
    for role in (QPalette.ColorRole.ButtonText, QPalette.ColorRole.Text):
        on = palette.color(QPalette.ColorGroup.Active, role).lightness()
        off = palette.color(QPalette.ColorGroup.Disabled, role).lightness()
        assert on - off > 60
    theme("light")
    assert before.plot.backgroundBrush().color().lightness() > 240
    assert before.plot.getPlotItem().getAxis("left").textPen().color().lightness() < 150


def test_the_playgrounds_speed_readout_is_an_average_not_the_last_tenth_of_a_second(
    build_tab, lab, job_ended
):
    with job_ended(lab.jobs, title="Preparing", timeout=60_000):
        tab = build_tab("playground")
    values = {"modes_covered": 3.0, "n_modes": 8.0, "quality": 0.5}
    shown = []
    for step, rate in enumerate([40.0, 5.0, 68.0, 5.0, 68.0, 5.0, 68.0]):  # as measured live
        tab._show_metrics({**values, "steps_per_s": rate}, step)
        shown.append(float(tab.speed_label.text().split()[0]))
    expected = 40.0
    for rate in [5.0, 68.0, 5.0, 68.0, 5.0, 68.0]:  # weight 0.15 for each new reading
        expected += 0.15 * (rate - expected)
    assert shown[-1] == round(expected)
    assert max(shown) - min(shown) <= 10  # the readings themselves swing by 63


def test_the_gan_tabs_default_length_is_sized_for_the_device(build_tab, lab):
    from advstudio.core.gan.config import DEFAULT_STEPS_CPU, GanConfig

    assert lab.state.device == "cpu"
    # about 2 minutes on a 2-core CPU to all ten digits (a slow test checks what they reach)
    assert build_tab("gan").steps.value() == DEFAULT_STEPS_CPU == 1200
    lab.state.device = "cuda"  # only read when the tab is built; nothing runs here
    try:
        assert build_tab("gan").steps.value() == GanConfig.steps == 2000
    finally:
        lab.state.device = "cpu"
