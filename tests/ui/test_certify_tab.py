"""The Certify tab alone on a small app state: its figures are the core functions' exactly
(same seed, tiny n0 = 10, n = 100), the plot holds both curves, exports write what it shows,
IBP names a layer it cannot bound, and Cancel stops a job."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from advstudio.core.certify.job import IbpConfig, certified_curve, verify_model
from advstudio.core.certify.smoothing import Smoothing, certify, certify_images
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.jobs import drive
from advstudio.core.models.classifier import Classifier


@pytest.fixture
def tab(qtbot, lab, settings):
    from advstudio.ui.certify.tab import CertifyTab

    widget = CertifyTab(lab.state, lab.jobs, lab.models, settings)
    qtbot.addWidget(widget)
    widget.n0.setValue(10)
    widget.n.setValue(100)
    widget.images.setValue(8)
    lab.use_model("digits-cnn")
    return widget


def _test_digits(model, n):
    x, y = load_digits("test")
    return model.prepare(x[:n]), y[:n]


def test_test_digits_curves_are_the_core_certificates(qtbot, tab, lab, tmp_path):
    tab.attack.setChecked(False)
    with qtbot.waitSignal(tab.test_done, timeout=120_000) as blocker:
        assert tab.certify_test() is not None
    result = blocker.args[0]
    model = lab.state.model
    x, y = _test_digits(model, 8)
    expected = drive(
        certify_images(model, x, Smoothing(0.25, 10, 100, 0.001), torch.Generator().manual_seed(0))
    ).result
    assert [(im.prediction, im.p_lower, im.radius) for im in result.images] == [
        (c.prediction, c.p_lower, c.radius) for c in expected
    ]
    assert [im.label for im in result.images] == y.tolist()
    from advstudio.ui.certify.tab import CURVE_POINTS, LOWER, UPPER

    assert tab.plot.points(LOWER) == CURVE_POINTS and tab.plot.points(UPPER) == 1
    assert f"abstained on {result.abstain_rate:.0%}" in tab.curve_text.text()
    qtbot.waitUntil(lambda: tab.csv_button.isEnabled())
    curves, images = tab.export(str(tmp_path / "c.csv"))
    rows = list(csv.DictReader(open(curves)))
    radii = tab.curve_radii(result)
    assert [float(r["certified_accuracy"]) for r in rows] == pytest.approx(
        certified_curve(result, radii), abs=1e-6
    )
    assert len(list(csv.DictReader(open(images)))) == 8
    (png,) = tab.export(str(tmp_path / "c.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # C&W, DeepFool and smooth PGD on one image: about a minute, loaded
def test_this_image_shows_the_certificate_and_the_attacks(qtbot, tab, lab, digit_png):
    from advstudio.core.images import load_image, to_tensor

    lab.state.set_image(load_image(digit_png))
    tab.attack.setChecked(True)
    with qtbot.waitSignal(tab.image_done, timeout=180_000) as blocker:
        tab.certify_image()
    im = blocker.args[0].images[0]
    model = lab.state.model
    x = model.prepare(to_tensor(lab.state.image))
    c = certify(model, x[0], Smoothing(0.25, 10, 100, 0.001), torch.Generator().manual_seed(0))
    assert (im.prediction, im.p_lower, im.radius) == (c.prediction, c.p_lower, c.radius)
    assert im.label == int(model(x).argmax(1)) == 7
    text = tab.image_text.text()
    assert f"certified L2 radius {c.radius:.3f}" in text and "smooth PGD" in text
    assert "C&W" in text and "DeepFool" in text


def test_ibp_figures_are_verify_models(qtbot, tab, lab):
    tab.ibp_eps.setValue(0.05)
    with qtbot.waitSignal(tab.ibp_done, timeout=120_000) as blocker:
        tab.verify_ibp()
    result = blocker.args[0]
    model = lab.state.model
    expected = drive(
        verify_model(model, *_test_digits(model, 8), IbpConfig(eps=0.05, n_images=8))
    ).result
    assert (result.verified, result.pgd_robust, result.correct) == (
        expected.verified,
        expected.pgd_robust,
        expected.correct,
    )
    assert f"verified {expected.verified_accuracy:.1%}" in tab.ibp_text.text()


def test_ibp_names_the_layer_it_cannot_bound(tab, lab):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Tanh())
    lab.state.set_model("tanh", Classifier(net, (1, 28, 28), DIGIT_CLASSES, (0.0,), (1.0,)))
    assert tab.verify_ibp() is None
    assert "Tanh" in tab.ibp_text.text() and not tab.job.busy


def test_cancel_stops_the_job_and_frees_the_buttons(qtbot, tab):
    tab.n.setValue(5_000)  # cancel acts between images
    tab.images.setValue(1000)
    worker = tab.certify_test()
    assert not tab.test_button.isEnabled() and tab.cancel_button.isEnabled()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        tab.cancel_button.click()
    qtbot.waitUntil(lambda: tab.test_button.isEnabled())
    assert tab.result is None


def test_nothing_starts_without_a_model(tab, lab):
    lab.state.set_model("", None)
    assert tab.certify_test() is None and tab.status.text() == "Load a model first."
