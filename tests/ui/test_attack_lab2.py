"""Attack lab II, the Attack tab built alone on a small app state: does the result survive
saving, the new attacks (APGD, DeepFool, C&W), input-transform defences with BPDA, the
feature-squeezing detector, the distance to the boundary and robust accuracy. Numbers are
checked against independent computations (our own rounding, JPEG through Pillow, norms,
quantiles)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from advstudio.core.images import load_image, to_tensor


@pytest.fixture
def tab(attack_alone):
    return attack_alone


def _attack(qtbot, tab, timeout=60_000):
    with qtbot.waitSignal(tab.attacked, timeout=timeout) as blocker:
        qtbot.mouseClick(tab.attack_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _choose(tab, attack: str) -> None:
    tab.access.setCurrentIndex(tab.access.findData("white-box"))
    tab.attack.setCurrentIndex(tab.attack.findData(attack))


def _top(model, x) -> int:
    return model.predict(x.to(model.device), k=1)[0].indices[0]


def _png(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG stores, by hand: round half to even on 255 levels."""
    return torch.from_numpy(np.rint(x.clamp(0, 1).numpy() * 255).astype(np.float32) / 255)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A gray (1, 1, H, W) image saved as a JPEG with Pillow and read back."""
    arr = np.rint(x[0, 0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    back = np.asarray(Image.open(buf).convert("L"), dtype=np.float32) / 255
    return torch.from_numpy(back)[None, None]


def _mark(adversarial: bool) -> str:
    return "✓" if adversarial else "✗"


# --------------------------------------------------------------------------- controls


def test_new_attacks_are_offered_white_box_only_and_grey_out_eps(qtbot, tab):
    assert all(tab.attack.findData(a) >= 0 for a in ("apgd", "deepfool", "cw"))
    _choose(tab, "deepfool")
    assert not tab.eps_spin.isEnabled() and not tab.eps_slider.isEnabled()
    assert "unused" in tab.eps_spin.toolTip()
    assert tab.steps.isEnabled() and not tab.alpha.isEnabled()
    assert not tab.targeted.isEnabled() and not tab.targeted.isChecked()
    assert not tab.form.isRowVisible(tab.cw_row) and not tab.form.isRowVisible(tab.apgd_loss)
    _choose(tab, "cw")
    assert tab.form.isRowVisible(tab.cw_row) and tab.targeted.isEnabled()
    assert not tab.eps_spin.isEnabled() and tab.steps.value() == 100
    tab.steps.setValue(40)
    _choose(tab, "apgd")
    assert tab.form.isRowVisible(tab.apgd_loss) and tab.eps_spin.isEnabled()
    _choose(tab, "cw")
    assert tab.steps.value() == 40  # each attack keeps its own steps
    tab.access.setCurrentIndex(tab.access.findData("transfer"))
    assert tab.attack.findData("apgd") < 0 and tab.attack.findData("cw") < 0


def test_bad_values_are_explained_with_the_allowed_range(qtbot, tab):
    from advstudio.core.attacks.lab import AttackSpec
    from advstudio.core.errors import ConfigError

    tab.jpeg_q.setValue(150)
    assert tab.jpeg_q.value() == 100 and "1 (worst) to 100" in tab.jpeg_q.toolTip()
    tab.cw_kappa.setValue(-1)
    assert tab.cw_kappa.value() == 0 and "≥ 0" in tab.cw_kappa.toolTip()
    with pytest.raises(ConfigError, match="from 1 to 100"):
        AttackSpec(jpeg_quality=101)
    with pytest.raises(ConfigError, match=">= 0"):
        AttackSpec(attack="cw", kappa=-0.5)
    panel = tab.defences
    panel.set_defence("jpeg")
    assert (panel.parameter.minimum(), panel.parameter.maximum()) == (1, 100)
    assert panel.run(parameter=0) is None
    assert "JPEG quality must be a whole number from 1 to 100" in panel.status.text()
    assert panel.fit_detector(rate=1.0) is None
    assert "(0, 1)" in panel.threshold_row.text()
    panel.rate.setValue(0)
    assert panel.rate.value() == pytest.approx(0.001)
    tab.robust.n_images.setValue(5000)
    assert tab.robust.n_images.value() == 1000


# --------------------------------------------------------------------------- survival


def test_survival_labels_agree_with_an_independent_recheck(qtbot, tab):
    model = tab.state.model
    tab.jpeg_check.setChecked(True)
    tab.jpeg_q.setValue(75)
    for attack in ("deepfool", "fgsm"):
        _choose(tab, attack)
        tab.set_eps(0.3)
        out = _attack(qtbot, tab)
        assert out.report.success
        png_adv = _top(model, _png(out.x_adv)) != out.label
        jpeg_adv = _top(model, _jpeg(out.x_adv, 75)) != out.label
        text = tab.survival.text()
        assert f"after PNG {_mark(png_adv)}" in text
        assert f"after JPEG q=75 {_mark(jpeg_adv)}" in text
        assert bool(out.survival.adv_png[0]) == png_adv
    # a new quality re-checks the shown result without attacking again
    with qtbot.waitSignal(tab.survival_checked, timeout=10_000) as blocker:
        tab.jpeg_q.setValue(20)
    again = blocker.args[0]
    assert torch.equal(again.x_adv, out.x_adv)
    jpeg_adv = _top(model, _jpeg(out.x_adv, 20)) != out.label
    assert f"after JPEG q=20 {_mark(jpeg_adv)}" in tab.survival.text()
    assert tab.settings.value("attack/jpeg_quality") in (20, "20")


def _flips_back_after_rounding(model, x: torch.Tensor, label: int) -> torch.Tensor:
    """An adversarial image whose 8-bit rounding is not: a grid image one grey level (in one
    pixel) short of the boundary, plus 0.49 grey level along the gradient sign."""
    from advstudio.core.attacks.whitebox import apply_direction, fgsm_direction

    y = torch.tensor([label])

    def fooled(img):
        return _top(model, img) != label

    direction = fgsm_direction(model, x, y)
    k = 1
    while not fooled(apply_direction(x, direction, k / 255)):
        k += 1
    lo, hi = apply_direction(x, direction, (k - 1) / 255), apply_direction(x, direction, k / 255)
    idx = (hi != lo).flatten().nonzero()[:, 0]

    def partial(n):
        img = lo.clone().flatten()
        img[idx[:n]] = hi.flatten()[idx[:n]]
        return img.view_as(x)

    a, b = 0, len(idx)  # partial(a) right, partial(b) fooled
    while b - a > 1:
        mid = (a + b) // 2
        a, b = (a, mid) if fooled(partial(mid)) else (mid, b)
    base = partial(a)
    x_adv = (base + 0.49 / 255 * fgsm_direction(model, base, y)).clamp(0, 1)
    assert fooled(x_adv) and not fooled(_png(x_adv))
    return x_adv


def test_export_warns_when_the_saved_png_no_longer_fools_and_still_writes(qtbot, tab, tmp_path):
    from advstudio.core.attacks.lab import AttackSpec, measure

    _choose(tab, "fgsm")
    tab.set_eps(0.3)  # before any outcome is shown: no rerun is scheduled
    model = tab.state.model
    x = to_tensor(tab.state.image)
    x_adv = _flips_back_after_rounding(model, x, 7)
    crafted = measure(model, x, x_adv, AttackSpec(eps=0.3), 7)
    tab._show_outcome(crafted)
    assert "after PNG ✗ (reads 7)" in tab.survival.text()
    files = tab.export_to(tmp_path / "adv.png")
    assert all(f.exists() for f in files)
    assert _top(model, to_tensor(load_image(tmp_path / "adv.png"))) == 7  # the file is honest
    box = tab.export_warning
    assert isinstance(box, QMessageBox) and box.isVisible() and not box.isModal()
    assert "no longer fools the model" in box.text() and "Quantisation-aware" in box.text()
    assert "reads as 7" in tab.message.text()
    box.close()
    # an ordinary FGSM result that survives is exported without a warning
    tab.export_warning = None
    out = _attack(qtbot, tab)
    assert out.report.success and bool(out.survival.adv_png[0])
    tab.export_to(tmp_path / "ok.png")
    assert tab.export_warning is None


def test_quantisation_aware_attack_lands_on_the_grid_and_survives(qtbot, tab):
    model = tab.state.model
    _choose(tab, "deepfool")
    tab.quantise.setChecked(True)
    out = _attack(qtbot, tab)
    assert out.quantise_method == "toward perturbation"  # measured on the digit 7
    levels = out.x_adv * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert _top(model, _png(out.x_adv)) != out.label
    assert "after PNG ✓" in tab.survival.text()
    assert "on the 1/255 grid" in tab.measures.text()
    assert tab.settings.value("attack/quantise") in (True, "true")


# --------------------------------------------------------------------------- new attacks


def test_apgd_dlr_and_cw_run_from_the_attack_combo(qtbot, tab):
    from advstudio.core.attacks.metrics import l2

    _choose(tab, "apgd")
    tab.apgd_loss.setCurrentIndex(tab.apgd_loss.findData("dlr"))
    tab.set_eps(0.2)
    tab.steps.setValue(20)
    out = _attack(qtbot, tab)
    assert out.spec.loss == "dlr" and out.report.success
    assert (out.x_adv - out.x).abs().max() <= 0.2 + 1e-6
    _choose(tab, "cw")
    tab.steps.setValue(30)
    tab.cw_kappa.setValue(1.0)
    out = _attack(qtbot, tab)
    assert out.spec.kappa == 1.0 and out.report.success
    needed = float(l2(out.x, out.x_adv)[0])
    assert f"C&W needed L2 {needed:.3f}" in tab.measures.text()
    logits = tab.state.model(out.x_adv).detach()[0]
    others = torch.cat([logits[: out.label], logits[out.label + 1 :]])
    assert others.max() - logits[out.label] >= 1.0 - 1e-4  # the kappa margin holds


# --------------------------------------------------------------------------- defences


def test_bpda_succeeds_where_plain_pgd_fails_on_bit_depth_2(qtbot, tab):
    from advstudio.core.attacks.transforms import BitDepth

    model = tab.state.model
    tab.set_eps(0.3)
    panel = tab.defences
    panel.set_defence("bit_depth", 2)
    with qtbot.waitSignal(panel.compared, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    c = blocker.args[0]
    x = to_tensor(tab.state.image)

    def squeezed(img):  # the defence by hand: 2 bits = levels 0, 1/3, 2/3, 1
        return _top(model, torch.round(img * 3) / 3)

    assert squeezed(x) == 7 == c.clean.indices[0]
    assert squeezed(c.plain.x_adv) == 7 and not c.plain.success
    assert squeezed(c.bpda.x_adv) != 7 and c.bpda.success
    for attack in (c.plain, c.bpda):
        assert (attack.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert torch.equal(torch.round(x * 3) / 3, BitDepth(2)(x))
    assert "Defended, clean: 7" in panel.views["clean"].caption.text()
    assert "not fooled" in panel.views["plain"].caption.text()
    assert ", fooled" in panel.views["bpda"].caption.text()
    assert "plain PGD not fooled; BPDA fooled" in panel.status.text()


def test_jpeg_defence_shows_no_gradient_not_an_error(qtbot, tab):
    panel = tab.defences
    tab.set_eps(0.3)
    panel.set_defence("jpeg", 75)
    with qtbot.waitSignal(panel.compared, timeout=30_000) as blocker:
        panel.run()
    c = blocker.args[0]
    assert c.plain.error is not None and c.plain.x_adv is None
    assert "no gradient" in panel.views["plain"].caption.text()
    assert panel.views["plain"].picture.text() == "no gradient"
    assert "could not run (no gradient)" in panel.status.text()
    assert not [b for b in tab.findChildren(QMessageBox) if b.isVisible()]
    assert c.bpda is not None and c.bpda.x_adv is not None


def test_detector_threshold_follows_the_false_alarm_rate(qtbot, tab):
    from advstudio.core.attacks.sweep import sweep_images
    from advstudio.core.attacks.transforms import FeatureSqueezingDetector
    from advstudio.ui.attack.transform_panel import CLEAN_IMAGES

    tab.set_eps(0.3)
    out = _attack(qtbot, tab)
    panel = tab.defences
    panel.rate.setValue(0.05)
    with qtbot.waitSignal(panel.detector_checked, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.fit_button, Qt.MouseButton.LeftButton)
    first = blocker.args[0]
    model = tab.state.model
    detector = FeatureSqueezingDetector(model)
    clean_scores = detector.score(sweep_images(CLEAN_IMAGES, 0)[0]).double()

    def threshold(rate):  # the (1 - rate) quantile of the clean scores
        return float(torch.quantile(clean_scores, 1 - rate))

    expected = threshold(0.05)
    assert first.threshold == pytest.approx(expected, abs=1e-6)
    assert panel.threshold_row.text().startswith(f"{expected:.4f}")
    score = float(detector.score(out.x_adv))
    verdict = "detected" if score > expected else "not detected"
    assert panel.adversarial_row.text() == f"score {score:.4f} → {verdict}"
    assert panel.original_row.text().endswith("not detected")
    with qtbot.waitSignal(panel.detector_checked, timeout=30_000) as blocker:
        panel.rate.setValue(0.3)  # the row follows the spin box, no button press
    second = blocker.args[0]
    expected = threshold(0.3)
    assert second.threshold == pytest.approx(expected, abs=1e-6)
    assert second.threshold < first.threshold
    assert panel.threshold_row.text().startswith(f"{expected:.4f} (flags 30.0%")


# --------------------------------------------------------------------------- boundary


def test_boundary_table_norms_match_the_returned_images(qtbot, tab):
    from advstudio.core.attacks.metrics import l2, linf

    panel = tab.boundary
    panel.cw_steps.setValue(30)
    panel.cw_rounds.setValue(3)
    with qtbot.waitSignal(panel.measured, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    rows = {r.method: r for r in blocker.args[0]}
    x = to_tensor(tab.state.image)
    model = tab.state.model
    cells = {c[0]: c for c in panel.table.cells()}
    assert list(cells) == ["FGSM (smallest ε)", "DeepFool", "C&W L2"]
    for method, name in (("deepfool", "DeepFool"), ("cw", "C&W L2"), ("fgsm", "FGSM (smallest ε)")):
        r = rows[method]
        assert r.success and _top(model, r.x_adv) != 7
        assert cells[name][1] == f"{float(l2(x, r.x_adv)[0]):.3f}"
        assert cells[name][2].startswith(f"{float(linf(x, r.x_adv)[0]):.4f}")
        assert cells[name][3] == "yes"
        assert cells[name][4] == model.class_names[_top(model, r.x_adv)]
        assert panel.thumbs[method].pixels is not None
    assert rows["cw"].l2 < rows["fgsm"].l2  # an L2 attack needs less L2 than an L-inf one


# --------------------------------------------------------------------------- robust accuracy


def test_robust_panel_shows_the_job_result_and_records_it(qtbot, tab, tmp_path):
    panel = tab.robust
    panel.ensemble.setCurrentIndex(panel.ensemble.findData("fast"))
    tab.set_eps(0.1)
    panel.n_images.setValue(8)
    tab.show_panel(panel)
    kind, config = tab.job_config()  # File ▸ Export job as config exports this panel's job
    assert kind == "robust" and config.eps == 0.1 and config.n_images == 8
    panel.steps.setValue(3)
    panel.queries.setValue(50)
    with qtbot.waitSignal(panel.evaluated, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: panel.worker.is_done, timeout=10_000)
    assert result.n_images == 8 and result.eps == pytest.approx(0.1)
    n = result.n_images
    robust = result.outcomes.count("robust")
    assert robust == round(result.robust_accuracy * n)
    assert round(result.clean_accuracy * n) == robust + sum(result.broken.values())
    cells = panel.table.cells()
    assert cells[0][1:] == [
        f"{result.clean_accuracy * 100:.1f} %",
        f"{round(result.clean_accuracy * n)} of {n}",
    ]
    assert cells[1][1] == f"{result.fgsm_accuracy * 100:.1f} %"
    assert cells[2][1:] == [f"{result.robust_accuracy * 100:.1f} %", f"{robust} of {n}"]
    assert [c[2] for c in cells[3:]] == [str(result.broken[a]) for a in result.attacks]
    shown = dict(panel.bars.shown())
    assert shown["robust"] == pytest.approx(result.robust_accuracy, abs=1e-3)
    assert shown["FGSM alone"] == pytest.approx(result.fgsm_accuracy, abs=1e-3)
    assert panel.run_button.text() == "Robust accuracy"
    runs = tab.jobs.store.list_runs(kind="robust")
    assert runs and runs[0].status == "finished"
    rows = list(csv.reader(panel.export_to(tmp_path / "robust.csv").open()))
    assert rows[0] == ["Measure", "Accuracy", "Images"] and rows[1:] == cells
