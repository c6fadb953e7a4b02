"""The patch and universal panels on a colour model (3×32×32, the tests' tiny CNN) and a colour
image of another size, driven as a user would: the data set from the picker, the patch dragged
with the mouse, scaled with the wheel, turned with the keys and the spin boxes; each change
emits a prediction equal to the model's own on the composed image (computed here from the core
functions), and the view shows exactly that image. The curves against size and ε get one point
per requested value, equal to the core's rates; a curve can be cancelled."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.core.colour_data import CLASSES, colour_classifier, colour_folder, shape_image


@pytest.fixture
def colour_tab(lab, build_tab, job_ended, tmp_path, monkeypatch):
    """The Attack tab alone with the colour CNN, a 40×48 colour image (the model takes 32×32)
    and a folder of 40 coloured shapes."""
    from advstudio.core.images import load_image
    from advstudio.ui.attack import patch_panel, universal_panel

    monkeypatch.setattr(patch_panel, "TRAIN", 12)
    monkeypatch.setattr(patch_panel, "TEST", 12)
    monkeypatch.setattr(universal_panel, "FIT", 8)
    monkeypatch.setattr(universal_panel, "HELD_OUT", 12)
    tab = build_tab("attack", size=(1280, 720))
    model = colour_classifier()
    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.state.set_model("test:colour-net", model)
    png = tmp_path / "shape.png"
    Image.fromarray(shape_image(2, np.random.default_rng(1), 48)[:40]).save(png)
    lab.state.set_image(load_image(png))
    tab.root = colour_folder(tmp_path / "shapes", per_class=4, junk=False)
    return tab


def _model_view(tab):
    from advstudio.core.images import to_tensor

    with torch.no_grad():
        return tab.state.model.prepare(to_tensor(tab.state.image))


def _expected(tab, panel):
    """The composed image and the prediction text, from the core, for the panel's geometry."""
    from advstudio.core.attacks.patch import fixed_placement, paste

    g = panel.geometry_now()
    where = fixed_placement(1, g["row"], g["col"], g["angle"], g["scale"])
    x, mask = paste(_model_view(tab), panel.result.patch, where)
    best = tab.state.model.predict(x, k=1)[0]
    name = tab.state.model.class_names[best.indices[0]]
    return x, mask, f"With the patch: {name} ({best.probs[0] * 100:.1f} %)"


def _shown(panel) -> np.ndarray:
    image = panel._background.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = image.height(), image.width(), image.bytesPerLine()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(h, bpl)
    return rows[:, : 3 * w].reshape(h, w, 3).copy()  # before the QImage goes


def _check(qtbot, tab, panel, change) -> dict:
    """Make ``change``, wait for the prediction, compare it (and the view) with the core's."""
    from advstudio.core.images import from_tensor, pixels_to_uint8

    with qtbot.waitSignal(panel.predicted, timeout=5_000) as blocker:
        change()
    x, mask, text = _expected(tab, panel)
    assert blocker.args[0] == text == panel.prediction.text()
    assert torch.allclose(panel.composed(), x)
    assert np.array_equal(_shown(panel), pixels_to_uint8(from_tensor(x)))
    base = _model_view(tab)
    assert torch.equal(x[:, :, mask[0, 0] == 0], base[:, :, mask[0, 0] == 0])
    g = panel.geometry_now()
    o = panel.outline
    assert (o.pos().y(), o.pos().x()) == pytest.approx((g["row"], g["col"]))
    assert o.scale() == pytest.approx(g["scale"]) and o.rotation() == pytest.approx(g["angle"])
    return g


def _wheel(view, pos: QPoint, notches: int, modifiers=Qt.KeyboardModifier.NoModifier):
    event = QWheelEvent(
        QPointF(pos),
        QPointF(view.viewport().mapToGlobal(pos)),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)


def test_the_patch_is_dragged_scaled_and_turned_on_a_colour_image(qtbot, colour_tab, tmp_path):
    tab = colour_tab
    panel = tab.patch
    tab.panels.setCurrentIndex(tab.panels.indexOf(panel.parentWidget().parentWidget()))
    assert [panel.target.itemData(i) for i in range(panel.target.count())] == list(range(10))
    assert panel.target.itemText(2) == f"2: {CLASSES[2]}"
    panel.data.use_folder(str(tab.root))
    panel.steps.setValue(3)
    panel.target.setCurrentIndex(4)
    with qtbot.waitSignal(panel.trained, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    res = blocker.args[0]
    assert res.patch.shape == (3, 10, 10) and res.target == 4 and res.n_test == 12
    assert "of 12 held-out images" in panel.status.text() and CLASSES[4] in panel.status.text()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    # staged at the centre of the image as the model sees it (32 × 32)
    g = _check(qtbot, tab, panel, panel.update_prediction)
    assert (g["row"], g["col"], g["scale"], g["angle"]) == (16, 16, 1.0, 0.0)

    view = panel.view
    view.fit()
    start = view.mapFromScene(QPointF(16, 16))
    end = view.mapFromScene(QPointF(22.5, 9.5))  # x = col, y = row

    def drag():
        qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(view.viewport(), start + QPoint(3, 3))
        qtbot.mouseMove(view.viewport(), end)
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)

    g = _check(qtbot, tab, panel, drag)
    # the patch's centre followed the mouse to where it was let go (to a screen pixel)
    assert (g["row"], g["col"]) == pytest.approx((9.5, 22.5), abs=0.2)

    here = view.mapFromScene(QPointF(g["col"], g["row"]))
    g = _check(qtbot, tab, panel, lambda: _wheel(view, here, 2))
    assert g["scale"] == pytest.approx(1.1)
    g = _check(qtbot, tab, panel, lambda: _wheel(view, here, -1, Qt.KeyboardModifier.ShiftModifier))
    assert g["angle"] == -5.0
    view.setFocus()
    before = g
    g = _check(qtbot, tab, panel, lambda: qtbot.keyClick(view, Qt.Key.Key_BracketRight))
    assert g["angle"] == 0.0
    g = _check(qtbot, tab, panel, lambda: qtbot.keyClick(view, Qt.Key.Key_Down))
    assert g["row"] == pytest.approx(before["row"] + 1)
    g = _check(qtbot, tab, panel, lambda: qtbot.keyClick(view, Qt.Key.Key_Plus))
    assert g["scale"] == pytest.approx(1.15)
    g = _check(qtbot, tab, panel, lambda: panel.angle.setValue(37.5))
    assert panel.outline.rotation() == 37.5
    g = _check(qtbot, tab, panel, lambda: panel.scale.setValue(160))
    # dragged far outside, the centre stays on the image
    g = _check(qtbot, tab, panel, lambda: panel.set_geometry(row=-50, col=500))
    assert (g["row"], g["col"]) == (0, 32)
    g = _check(qtbot, tab, panel, lambda: qtbot.keyClick(view, Qt.Key.Key_0))
    assert (g["row"], g["col"], g["scale"], g["angle"]) == (16, 16, 1.0, 0.0)
    assert panel.export_to(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with Image.open(tmp_path / "p.png") as png:
        assert png.mode == "RGB" and png.size == (10, 10)


def test_a_burst_of_changes_costs_one_forward(qtbot, colour_tab):
    """Changes made faster than the event loop turns (a drag's burst of mouse events) are
    coalesced: one forward, of the latest place."""
    tab = colour_tab
    panel = tab.patch
    panel.data.use_folder(str(tab.root))
    panel.steps.setValue(1)
    with qtbot.waitSignal(panel.trained, timeout=60_000):
        panel.run()
    qtbot.waitUntil(lambda: not panel.job.busy and not panel.timer.isActive(), timeout=10_000)
    texts = []
    panel.predicted.connect(texts.append)
    calls = []
    model = tab.state.model
    original = model.predict
    model.predict = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        with qtbot.waitSignal(panel.predicted, timeout=5_000):
            for step in range(20):
                panel.set_geometry(row=4 + step, col=30 - step, angle=3 * step)
        qtbot.wait(3 * panel.timer.interval() + 50)
    finally:
        del model.predict
    assert len(calls) == len(texts) == 1
    assert panel.geometry_now() == {"row": 23, "col": 11, "scale": 1.0, "angle": 57.0}
    assert texts[0] == _expected(tab, panel)[2]


def test_success_against_size_gets_a_point_per_size(qtbot, colour_tab):
    from advstudio.core.attacks.patch import success_rate, train_test_images

    tab = colour_tab
    panel = tab.patch
    panel.data.use_folder(str(tab.root))
    panel.steps.setValue(2)
    with qtbot.waitSignal(panel.trained, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    panel.sizes.setText("5, 10, 20 %, 30")
    with qtbot.waitSignal(panel.size_curve, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.curve_button, Qt.MouseButton.LeftButton)
    curve = blocker.args[0]
    assert curve.areas == [0.05, 0.1, 0.2, 0.3] and not curve.retrained
    xs, ys = panel.points.getData()
    assert list(xs) == pytest.approx([5, 10, 20, 30]) and list(ys) == curve.success
    _, x_test, _ = train_test_images(f"folder:{tab.root}", "all", "none", tab.state.model, 12, 12)
    want = [
        success_rate(tab.state.model, x_test, res.patch, res.target, 1, math.sqrt(a * 1024) / 10)
        for a in curve.areas
    ]
    assert curve.success == want
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    assert panel.progress.isHidden() and panel.cancel_button.isHidden()
    panel.sizes.setText("5, sixty")
    assert panel.run_size_curve() is None and "'sixty' is not a number" in panel.status.text()


def test_a_curve_against_size_can_be_cancelled(qtbot, colour_tab, job_ended):
    tab = colour_tab
    panel = tab.patch
    panel.data.use_folder(str(tab.root))
    panel.size_mode.setCurrentIndex(panel.size_mode.findData("retrain"))
    panel.steps.setValue(5000)
    panel.sizes.setText("5, 10, 20")
    with job_ended(tab.jobs, title="Patch success", timeout=30_000):
        panel.run_size_curve()
        assert not panel.cancel_button.isHidden() and not panel.curve_button.isEnabled()
        qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20_000)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.curve is None and panel.status.text() == "cancelled."
    assert panel.curve_button.isEnabled() and panel.progress.isHidden()


def test_universal_panel_on_a_colour_model(qtbot, colour_tab, tmp_path):
    from advstudio.core.attacks.patch import train_test_images
    from advstudio.core.attacks.universal import apply, fooling_rate
    from advstudio.core.images import load_image

    tab = colour_tab
    panel = tab.universal
    assert panel.target.itemText(3) == f"towards {CLASSES[2]}"
    panel.data.use_folder(str(tab.root))
    tab.set_eps(0.05)
    with qtbot.waitSignal(panel.fitted, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    model = tab.state.model
    assert res.v.shape == (3, 32, 32) and float(res.v.abs().max()) <= 0.05 + 1e-7
    assert "of 12 held-out images fooled" in panel.status.text()
    # amplified: grey is 0, ±ε the ends, per channel (colour stays colour)
    assert panel.perturbation.pixels.shape == (32, 32, 3)
    amplified = 0.5 + 0.5 * res.v.numpy().transpose(1, 2, 0) / 0.05
    assert np.allclose(panel.perturbation.pixels, amplified)

    def caption():
        x = apply(_model_view(tab), res.v)
        top = model.predict(x, k=1)[0]
        return f"{model.class_names[top.indices[0]]} ({top.probs[0] * 100:.1f} %)"

    assert panel.applied.caption.text().endswith(caption())
    # another image, of another size: the perturbation follows at once
    png = tmp_path / "other.png"
    Image.fromarray(shape_image(7, np.random.default_rng(3), 64)).save(png)
    tab.state.set_image(load_image(png))
    assert panel.applied.caption.text().endswith(caption())

    # the fooling rate against ε: the fitted one rescaled, one point per ε
    panel.curve_mode.setCurrentIndex(panel.curve_mode.findData("rescale"))
    panel.epsilons.setText("0, 0.01, 0.03, 0.05, 0.1")
    with qtbot.waitSignal(panel.eps_curve, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.curve_button, Qt.MouseButton.LeftButton)
    curve = blocker.args[0]
    assert curve.eps == [0, 0.01, 0.03, 0.05, 0.1] and not curve.refit
    x_fit, x_held, _ = train_test_images(f"folder:{tab.root}", "all", "none", model, 8, 12)
    want = [fooling_rate(model, x_held, res.v * e / 0.05) for e in curve.eps]
    assert curve.held_out == pytest.approx(want) and curve.held_out[0] == 0
    xs, ys = panel.held_points.getData()
    assert list(xs) == curve.eps and list(ys) == curve.held_out
    assert len(panel.fit_points.getData()[0]) == 5
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)


def test_universal_curve_fits_once_per_eps(qtbot, colour_tab):
    from advstudio.core.attacks.patch import train_test_images
    from advstudio.core.attacks.universal import universal_perturbation

    tab = colour_tab
    panel = tab.universal
    panel.data.use_folder(str(tab.root))
    panel.epsilons.setText("0.01, 0.04")
    with qtbot.waitSignal(panel.eps_curve, timeout=120_000) as blocker:
        panel.run_eps_curve()
    curve = blocker.args[0]
    assert curve.refit and curve.eps == [0.01, 0.04] and len(curve.held_out) == 2
    model = tab.state.model
    x_fit, x_held, _ = train_test_images(f"folder:{tab.root}", "all", "none", model, 8, 12)
    alone = universal_perturbation(model, x_fit, x_held, 0.04)
    assert curve.held_out[1] == alone.held_out_rate
    assert list(panel.held_points.getData()[1]) == curve.held_out
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)


def test_a_curve_against_eps_can_be_cancelled(qtbot, colour_tab, job_ended, monkeypatch):
    from advstudio.ui.attack import universal_panel

    tab = colour_tab
    panel = tab.universal
    panel.data.use_folder(str(tab.root))
    monkeypatch.setattr(universal_panel, "FIT", 24)  # enough fitting to be caught in flight
    panel.epsilons.setText(", ".join(str(e / 100) for e in range(1, 21)))
    with job_ended(tab.jobs, title="Universal fooling", timeout=30_000):
        panel.run_eps_curve()
        assert not panel.cancel_button.isHidden() and not panel.run_button.isEnabled()
        qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=20_000)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.curve is None and panel.status.text() == "cancelled."
    assert panel.run_button.isEnabled() and panel.progress.isHidden()
    assert len(panel.held_points.getData()[0] or []) < 20
