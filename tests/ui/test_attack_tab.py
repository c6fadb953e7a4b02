"""The Attack tab, built alone on a small app state (the built-in CNN, the test digit 7):
attack, slider, targeted, black-box, export, sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from advstudio.core.images import load_image, to_tensor


@pytest.fixture
def tab(attack_alone):
    return attack_alone


def _attack(qtbot, tab):
    with qtbot.waitSignal(tab.attacked, timeout=30_000) as blocker:
        qtbot.mouseClick(tab.attack_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def test_fgsm_whitebox_respects_eps_and_shows_everything(qtbot, tab):
    tab.set_eps(0.3)
    out = _attack(qtbot, tab)
    x = to_tensor(tab.state.image)
    assert (out.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert out.before.names[0] == "7"
    assert tab.adversarial.pixels is not None and tab.perturbation.pixels.shape == (28, 28, 3)
    assert tab.after.shown()[0][0] == out.after.names[0]
    assert "L∞ 0.3000" in tab.measures.text()
    assert tab.export_button.isEnabled()


def test_slider_reuses_the_gradient_sign(qtbot, tab):
    from advstudio.core.attacks import apply_direction

    tab.set_eps(0.05)
    first = _attack(qtbot, tab)
    direction = first.direction
    seen = []
    tab.attacked.connect(seen.append)
    tab.survival_checked.connect(seen.append)
    for value in (100, 150, 200, 250, 120, 80):  # (latency: benchmarks/bench_ui.py)
        # the image after one forward pass, then the saving check on its own job
        seen.clear()
        with qtbot.waitSignals(
            [tab.attacked, tab.survival_checked], timeout=10_000, order="strict"
        ):
            tab.eps_slider.setValue(value)
        out, checked = seen
        assert out.survival is None and checked.survival is not None
        assert torch.equal(checked.x_adv, out.x_adv) and tab.outcome is checked
        assert tab.survival.text().startswith(("still adversarial", "not adversarial"))
        assert out.spec.eps == pytest.approx(value / 1000)
        torch.testing.assert_close(out.direction, direction)
        torch.testing.assert_close(out.x_adv, apply_direction(first.x, direction, value / 1000))
    assert tab.eps_spin.value() == pytest.approx(0.08)


def test_targeted_pgd_reaches_the_target(qtbot, tab):
    tab.attack.setCurrentIndex(tab.attack.findData("pgd"))
    tab.steps.setValue(20)
    tab.set_eps(0.3)
    tab.targeted.setChecked(True)
    tab.target.setCurrentIndex(tab.target.findData(3))
    out = _attack(qtbot, tab)
    assert out.after.names[0] == "3" and out.report.success
    assert "fooled" in tab.measures.text()


def test_target_equal_to_the_true_class_is_explained(qtbot, tab, job_ended):
    from advstudio.core.errors import ConfigError

    tab.targeted.setChecked(True)
    tab.target.setCurrentIndex(tab.target.findData(7))
    errors = []
    with job_ended(tab.jobs) as ended:
        tab.run_attack().errored.connect(errors.append)  # checked on the job: queued, not missed
    [error] = errors
    assert ended.worker.title == "FGSM attack" and isinstance(error, ConfigError)
    assert "the target class '7' is already the true class" in str(error)
    assert str(error) in tab.message.text()


def test_query_attack_reports_queries(qtbot, tab):
    tab.access.setCurrentIndex(tab.access.findData("query"))
    tab.attack.setCurrentIndex(tab.attack.findData("simba"))
    tab.budget.setValue(500)
    tab.set_eps(0.3)
    out = _attack(qtbot, tab)
    assert out.queries is not None and 1 <= out.queries <= 500
    assert f"queries to the target: {out.queries:,}" in tab.measures.text()
    assert out.direction is None


def test_transfer_attack_loads_the_surrogate(qtbot, tab):
    tab.access.setCurrentIndex(tab.access.findData("transfer"))
    tab.set_eps(0.25)
    with qtbot.waitSignal(tab.attacked, timeout=30_000) as blocker:
        tab.run_attack()
    out = blocker.args[0]
    assert "digits-mlp" in tab.surrogates
    assert "surrogate fooled" in tab.measures.text()
    assert (out.x_adv - out.x).abs().max() <= 0.25 + 1e-6


def test_export_png_reloads_to_the_same_adversarial_prediction(qtbot, tab, tmp_path):
    tab.set_eps(0.25)
    out = _attack(qtbot, tab)
    files = tab.export_to(tmp_path / "adv.png")
    assert all(f.exists() for f in files)
    reloaded = to_tensor(load_image(tmp_path / "adv.png"))
    assert (reloaded - out.x_adv).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only
    pred = tab.state.model.predict(reloaded, k=1)[0]
    assert pred.names[0] == out.after.names[0]
    delta = np.load(tmp_path / "adv_perturbation.npy")
    np.testing.assert_allclose(delta[..., 0], (out.x_adv - out.x)[0, 0].numpy(), atol=1e-7)


def test_smallest_eps_flips_the_image(qtbot, tab):
    with qtbot.waitSignal(tab.attacked, timeout=30_000) as blocker:  # the search, then FGSM
        worker = tab.find_min_eps()
    assert worker is not None and worker.is_done
    out = blocker.args[0]
    assert "Smallest FGSM ε" in tab.message.text()
    assert out.report.success and out.spec.eps == pytest.approx(tab.eps, abs=1e-6)
    from advstudio.core.attacks import apply_direction

    below = apply_direction(out.x, out.direction, max(out.spec.eps - 0.002, 0))
    assert tab.state.model.predict(below, 1)[0].names[0] == "7"


def test_sweep_draws_curves_and_exports(qtbot, tab, tmp_path):
    sweep = tab.sweep
    sweep.checks["pgd"].setChecked(False)
    sweep.n_images.setValue(60)
    sweep.epsilons.setText("0, 0.1, 0.3")
    with qtbot.waitSignal(sweep.sweep_done, timeout=60_000) as blocker:
        qtbot.mouseClick(sweep.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    curve = result.curves["fgsm"]
    assert not result.partial and curve.epsilons == [0, 0.1, 0.3]
    assert curve.accuracy[0] == pytest.approx(result.clean_accuracy)
    assert curve.accuracy[2] < curve.accuracy[0]
    assert len(sweep.plot.listDataItems()) == 2
    csv_path, png = sweep.export_to(tmp_path / "sweep.csv")
    assert "fgsm" in csv_path.read_text() and png.stat().st_size > 1000


def test_cancelled_sweep_is_marked_partial(qtbot, tab, job_ended):
    sweep = tab.sweep
    sweep.checks["pgd"].setChecked(True)
    sweep.n_images.setValue(200)
    sweep.epsilons.setText("0, 0.1, 0.2, 0.3")
    with job_ended(tab.jobs, timeout=60_000) as ended:
        worker = sweep.start()
        qtbot.waitUntil(
            lambda: bool(sweep.result is not None and sweep.result.curves), timeout=30_000
        )
        with qtbot.waitSignal(sweep.sweep_done, timeout=60_000) as blocker:
            qtbot.mouseClick(sweep.run_button, Qt.MouseButton.LeftButton)  # "Cancel sweep"
    assert ended.worker is worker and worker.cancel_requested
    result = blocker.args[0]
    assert result.partial  # fewer than the 2 attacks x 4 epsilons asked for:
    assert 1 <= sum(len(c.epsilons) for c in result.curves.values()) < 2 * 4
    assert "partial" in sweep.status.text()
    qtbot.waitUntil(lambda: any("(partial)" in item.name() for item in sweep.plot.listDataItems()))


def test_bad_epsilons_are_explained(qtbot, tab):
    tab.sweep.epsilons.setText("0, 2")
    assert tab.sweep.start() is None
    assert "outside [0, 1]" in tab.sweep.status.text()


def test_a_model_without_input_gradients_gets_black_box_attacks_only(qtbot, lab, tab, tmp_path):
    from torch import nn

    class NoGrad(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            with torch.no_grad():
                return self.fc(x.flatten(1))

    torch.jit.script(NoGrad()).save(str(tmp_path / "nograd.ts"))
    from advstudio.core.models.card import ModelCard, write_card

    write_card(ModelCard((1, 28, 28), "digits"), tmp_path / "nograd.ts")  # a user file's card
    lab.models.request(f"file:{tmp_path / 'nograd.ts'}")
    qtbot.waitUntil(lambda: not tab.whitebox_allowed, timeout=20_000)
    assert tab.access.currentData() == "transfer"
    item = tab.access.model().item(tab.access.findData("white-box"))
    assert not item.isEnabled()
    assert "only black-box attacks" in tab.message.text()
    tab.access.setCurrentIndex(tab.access.findData("query"))
    tab.attack.setCurrentIndex(tab.attack.findData("simba"))
    tab.budget.setValue(100)
    out = _attack(qtbot, tab)
    assert out.queries is not None and out.queries <= 100


def test_label_only_access_offers_hopskipjump_and_counts_its_queries(qtbot, tab):
    """The fourth access level: the attacker sees the predicted class only."""
    tab.access.setCurrentIndex(tab.access.findData("labels"))
    names = [tab.attack.itemData(i) for i in range(tab.attack.count())]
    assert names == ["hsj"]
    tab.budget.setValue(300)
    out = _attack(qtbot, tab)
    assert out.queries is not None and 1 <= out.queries <= 300
    assert out.after.indices[0] != out.before.indices[0]  # HopSkipJump starts adversarial
    assert f"queries to the target: {out.queries:,}" in tab.measures.text()


def test_sweep_curves_of_another_model_are_marked_as_such(qtbot, tab, lab, job_ended):
    sweep = tab.sweep
    sweep.checks["pgd"].setChecked(False)
    sweep.n_images.setValue(20)
    sweep.epsilons.setText("0, 0.2")
    with qtbot.waitSignal(sweep.sweep_done, timeout=60_000):
        qtbot.mouseClick(sweep.run_button, Qt.MouseButton.LeftButton)
    assert sweep.status.text().startswith("digits-cnn: clean accuracy")
    names = [item.name() for item in sweep.plot.listDataItems()]
    assert names == ["FGSM accuracy", "FGSM success"]

    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.use_model("digits-mlp")  # e.g. "Attack this model" hands over another model
    assert sweep.stale
    assert "computed for digits-cnn, not the current model digits-mlp" in sweep.status.text()
    names = [item.name() for item in sweep.plot.listDataItems()]
    assert names == ["FGSM accuracy (digits-cnn)", "FGSM success (digits-cnn)"]
    accuracy = sweep.plot.listDataItems()[0]  # solid while current, dotted once stale
    assert accuracy.opts["pen"].style() == Qt.PenStyle.DotLine

    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.use_model("digits-cnn")  # back to the model they were computed for
    assert not sweep.stale and "computed for" not in sweep.status.text()
