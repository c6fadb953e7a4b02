"""The playground tab through real widgets: drawing with the mouse, step mode, live changes
reaching the running job, pause-and-step, remembered settings, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from advstudio.ui.playground.tab import PlaygroundTab
from advstudio.ui.state import AppState
from advstudio.workers import JobManager


@pytest.fixture
def jobs():
    manager = JobManager()
    yield manager
    manager.shutdown()


@pytest.fixture
def tab(qtbot, settings, jobs):
    w = PlaygroundTab(AppState(), jobs, settings=settings)
    qtbot.addWidget(w)
    w.resize(1300, 760)
    w.show()
    qtbot.waitExposed(w)
    w.batch.setValue(32)
    return w


def _click_at(qtbot, tab, x: float, y: float) -> None:
    """A left click on the plot at data coordinates (x, y), mapped through the ViewBox."""
    scene = tab.view.mapViewToScene(QPointF(x, y))
    pos = tab.plot.mapFromScene(scene)
    qtbot.mouseClick(tab.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _same(before, net) -> bool:
    return all(torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_clicked_points_become_the_training_set(qtbot, tab):
    qtbot.mouseClick(tab.draw_button, Qt.MouseButton.LeftButton)
    assert tab.view.drawing and tab.target.currentData() == "drawn"
    clicks = [(-1.5, 1.0), (1.0, 1.5), (0.5, -2.0)]
    for x, y in clicks:
        _click_at(qtbot, tab, x, y)
    assert len(tab.points) == 3
    # a pixel is 6 / ~700 data units: the clicks land within two of them
    assert np.allclose(tab.points, clicks, atol=0.03)
    assert "3 point(s) drawn" in tab.status.text()
    tab.step_once()
    target = tab.playground.target
    assert target.key == "drawn" and np.allclose(target.reference, tab.points)
    assert target.n_modes == 3  # three separate clicks, three modes
    # the real points shown are the drawn Gaussians
    shown = np.stack(tab.real.getData(), 1)
    nearest = np.linalg.norm(shown[:, None] - np.asarray(clicks)[None], axis=2).min(1)
    assert np.quantile(nearest, 0.99) < 0.25


def test_starting_without_drawn_points_says_what_to_do(qtbot, tab, jobs):
    tab.target.setCurrentIndex(tab.target.findData("drawn"))
    assert "Draw at least one point" in tab.status.text()
    assert tab.start() is None and tab.worker is None
    assert tab.step_d() is None
    assert "Draw at least one point" in tab.status.text()


def test_step_buttons_move_one_network_each(qtbot, tab):
    tab.show_arrows.setChecked(True)
    qtbot.mouseClick(tab.step_d_button, Qt.MouseButton.LeftButton)
    play = tab.playground
    g, d = _params(play.G), _params(play.D)
    qtbot.mouseClick(tab.step_d_button, Qt.MouseButton.LeftButton)
    assert _same(g, play.G) and not _same(d, play.D)
    assert "D step" in tab.status.text() and play.d_updates == 2
    g, d = _params(play.G), _params(play.D)
    with qtbot.waitSignal(tab.snapshot_shown) as shown:
        qtbot.mouseClick(tab.step_g_button, Qt.MouseButton.LeftButton)
    assert not _same(g, play.G) and _same(d, play.D)
    snap = shown.args[0]
    assert snap.phase == "g" and snap.moved is not None
    assert len(tab.moves.getData()[0]) == 2 * len(snap.fake)  # one segment per point
    assert tab.modes_label.text().startswith("Modes covered:")
    assert len(tab.arrows.getData()[0]) > 0
    # the heat map's 64 x 64 pixels cover exactly the view box [-3, 3]^2
    box = tab.heat.mapRectToView(tab.heat.boundingRect())
    assert (box.left(), box.right(), box.top(), box.bottom()) == pytest.approx((-3, 3, -3, 3))
    assert tab.heat.image.shape == (64, 64, 4)


def test_keys_d_g_and_space_step(qtbot, tab):
    tab.activateWindow()
    tab.setFocus()
    qtbot.keyClick(tab, Qt.Key.Key_D)
    assert tab.playground is not None and tab.playground.d_updates == 1
    qtbot.keyClick(tab, Qt.Key.Key_G)
    assert tab.playground.steps_done == 1
    tab.d_steps.setValue(2)
    tab.setFocus()
    qtbot.keyClick(tab, Qt.Key.Key_Space)
    assert (tab.playground.steps_done, tab.playground.d_updates) == (2, 3)


def test_changes_while_running_reach_the_job(qtbot, tab, jobs, job_ended):
    with job_ended(jobs, timeout=60_000):
        worker = tab.start()
        _change_settings_while_running(qtbot, tab, worker)
    assert "Stopped at step" in tab.status.text()
    assert tab.start_button.isEnabled() and tab.step_d_button.isEnabled()


def _change_settings_while_running(qtbot, tab, worker):
    assert worker is not None
    qtbot.waitUntil(lambda: tab.playground.steps_done >= 3, timeout=30_000)
    assert not tab.step_d_button.isEnabled() and not tab.reset_button.isEnabled()
    tab.lr_g.setValue(0.0042)
    qtbot.waitUntil(
        lambda: tab.playground.opt_g.param_groups[0]["lr"] == pytest.approx(0.0042), timeout=10_000
    )
    tab.optimiser.setCurrentIndex(tab.optimiser.findData("rmsprop"))
    qtbot.waitUntil(lambda: isinstance(tab.playground.opt_d, torch.optim.RMSprop), timeout=10_000)
    tab.loss.setCurrentIndex(tab.loss.findData("hinge"))
    tab.batch.setValue(48)
    qtbot.waitUntil(
        lambda: (tab.playground.params.loss, tab.playground.params.batch_size) == ("hinge", 48),
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: tab.frames >= 2 and tab.loss_plot.points("loss_d") >= 3, timeout=10_000)
    assert tab.speed_label.text().endswith("steps/s")
    with qtbot.waitSignals([worker.aborted, worker.finished], order="strict", timeout=10_000):
        qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)


def test_pause_then_step_then_resume(qtbot, tab, jobs, job_ended):
    with job_ended(jobs, timeout=60_000):
        _pause_step_resume(qtbot, tab, tab.start())


def _pause_step_resume(qtbot, tab, worker):
    qtbot.waitUntil(lambda: tab.playground.steps_done >= 2, timeout=30_000)
    with qtbot.waitSignal(worker.paused, timeout=10_000):
        qtbot.mouseClick(tab.pause_button, Qt.MouseButton.LeftButton)
    assert tab.pause_button.text() == "Resume" and tab.step_g_button.isEnabled()
    steps = tab.playground.steps_done
    tab.step_g()
    assert tab.playground.steps_done == steps + 1
    with qtbot.waitSignal(worker.resumed, timeout=10_000):
        qtbot.mouseClick(tab.pause_button, Qt.MouseButton.LeftButton)
    assert not tab.step_g_button.isEnabled()
    qtbot.waitUntil(lambda: tab.playground.steps_done > steps + 2, timeout=10_000)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        tab.stop()


def test_reset_and_remembered_settings(qtbot, tab, settings, jobs):
    tab.loss.setCurrentIndex(tab.loss.findData("wgan-gp"))
    tab.lr_d.setValue(0.0005)
    tab.show_mesh.setChecked(False)
    tab.step_once()
    first = tab.playground
    tab.reset()
    assert tab.playground is not first and tab.playground.steps_done == 0
    assert tab.loss_plot.points("loss_d") == 0
    again = PlaygroundTab(AppState(), jobs, settings=settings)
    qtbot.addWidget(again)
    assert again.loss.currentData() == "wgan-gp" and again.lr_d.value() == 0.0005
    assert again.batch.value() == 32 and not again.show_mesh.isChecked()


def test_the_main_window_has_the_playground_after_the_gan_tab(qtbot, window):
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert names[names.index("GAN") + 1] == "Playground"
    qtbot.waitUntil(lambda: window.playground_tab is not None, timeout=10_000)
    assert window.playground_host.content is window.playground_tab


def test_a_drag_draws_a_stroke_that_is_one_mode(qtbot, tab, monkeypatch):
    import pyqtgraph
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    # pyqtgraph drops mouse moves closer than 1/mouseRateLimit s apart: off, so quick moves count
    monkeypatch.setitem(pyqtgraph.CONFIG_OPTIONS, "mouseRateLimit", 0)
    tab.draw_button.setChecked(True)
    viewport = tab.plot.viewport()

    def send(kind, x, y, buttons):
        pos = QPointF(tab.plot.mapFromScene(tab.view.mapViewToScene(QPointF(x, y))))
        event = QMouseEvent(
            kind,
            pos,
            viewport.mapToGlobal(pos),
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, event)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QMouseEvent.Type.MouseButtonPress, -2.0, 0.0, left)
    for i in range(1, 9):  # 4 data units in 8 moves
        send(QMouseEvent.Type.MouseMove, -2.0 + 0.5 * i, 0.0, left)
    send(QMouseEvent.Type.MouseButtonRelease, 2.0, 0.0, none)
    pts = np.array(tab.points)
    assert len(pts) >= 3.8 / 0.05 - 3  # the stroke filled in every 0.05 units
    assert pts[0, 0] < -1.8 and pts[-1, 0] > 1.95 and np.abs(pts[:, 1]).max() < 0.03
    assert np.diff(pts[:, 0]).max() <= 0.05 + 0.02
    assert tab.current_target().n_modes == 1  # one stroke, one mode


def test_a_hidden_tab_draws_only_the_latest_snapshot_when_shown(qtbot, tab):
    tab.step_once()
    frames = tab.frames
    tab.hide()
    tab.step_once()
    tab.step_once()
    assert tab.frames == frames
    with qtbot.waitSignal(tab.snapshot_shown) as shown:
        tab.show()
    assert tab.frames == frames + 1 and shown.args[0].step == 3


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_the_visible_range_is_the_heat_map_s_no_white_bands(qtbot, window, size):
    """Issue #19: at 1920×1080 the aspect-locked view showed white bands beyond x = ±3, where
    the heat map ends; the plot is now held square, so the view is the heat map's extent."""
    from advstudio.core.playground import VIEW

    window.resize(*size)
    window.tabs.setCurrentWidget(window.playground_host)
    qtbot.waitUntil(lambda: window.playground_tab is not None, timeout=10_000)
    qtbot.waitUntil(lambda: window.size().toTuple() == size, timeout=5000)
    tab = window.playground_tab
    qtbot.wait(100)
    (x0, x1), (y0, y1) = tab.view.viewRange()
    xmin, xmax, ymin, ymax = VIEW
    tol = 0.02 * (xmax - xmin)  # a pixel or two of rounding
    assert abs(x0 - xmin) <= tol and abs(x1 - xmax) <= tol, (x0, x1)
    assert abs(y0 - ymin) <= tol and abs(y1 - ymax) <= tol, (y0, y1)
    # the plot still uses the space: its square is the holder's smaller side
    vb = tab.view.size()
    holder = tab.plot_holder
    assert abs(vb.width() - vb.height()) <= 2
    assert vb.width() >= min(holder.width(), holder.height()) - 80
