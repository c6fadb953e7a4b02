"""Attack lab III in the Attack tab built alone: the robust panel's ensemble choice (AutoAttack
standard by default, the fast one on request) and its checks' warnings; the Input defences
panel's EoT column; the universal perturbation, patch and explanation panels."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt


def test_robust_panel_runs_autoattack_standard_by_default(qtbot, attack_alone):
    tab = attack_alone
    panel = tab.robust
    assert panel.ensemble.currentData() == "standard" and panel.queries.value() == 5000
    panel.ensemble.setCurrentIndex(panel.ensemble.findData("fast"))
    assert panel.queries.value() == 1000 and panel.config().attacks[-1] == "spsa"
    panel.ensemble.setCurrentIndex(panel.ensemble.findData("standard"))
    tab.set_eps(0.2)
    panel.n_images.setValue(6)
    panel.steps.setValue(3)
    panel.queries.setValue(60)
    config = panel.config()
    assert config.attacks == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert config.square_queries == 60
    with qtbot.waitSignal(panel.evaluated, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: panel.worker.is_done, timeout=10_000)
    cells = panel.table.cells()
    assert [c[0] for c in cells[3:]] == [
        "broken first by APGD-CE",
        "broken first by APGD-T (targeted DLR)",
        "broken first by FAB-T",
        "broken first by Square (query-based)",
    ]
    assert [c[2] for c in cells[3:]] == [str(result.broken[a]) for a in result.attacks]
    # the built-in CNN passes AutoAttack's checks before the attacks
    assert not any(
        w.check in ("randomness", "probabilities", "zero-gradients") for w in result.warnings
    )
    assert panel.warnings.text().count("⚠") == len(result.warnings)


def test_noise_defence_shows_plain_bpda_and_eot_side_by_side(qtbot, attack_alone):
    tab = attack_alone
    panel = tab.defences
    tab.set_eps(0.2)
    panel.steps.setValue(3)
    panel.set_defence("noise", 25)
    assert panel.parameter_label.text() == "σ %"
    with qtbot.waitSignal(panel.compared, timeout=60_000) as blocker:
        panel.run()
    c = blocker.args[0]
    for key, attack in (("plain", c.plain), ("bpda", c.bpda), ("eot", c.eot)):
        assert attack.x_adv is not None and attack.linf <= 0.2 + 1e-6
        verdict = "fooled" if attack.success else "not fooled"
        assert panel.views[key].caption.text().endswith(verdict)
    assert f"EoT-PGD {'fooled' if c.eot.success else 'not fooled'}." in panel.status.text()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    panel.set_defence("median", 2)
    with qtbot.waitSignal(panel.compared, timeout=60_000):
        panel.run()
    assert panel.views["eot"].caption.text() == "EoT: the defence is not random"


@pytest.mark.slow  # about 30 s on the loaded 2-core machine: the fit's DeepFool steps
def test_universal_panel_fits_and_applies_it_to_the_image(qtbot, attack_alone, monkeypatch):
    from advstudio.core.attacks.universal import apply
    from advstudio.core.images import to_tensor
    from advstudio.ui.attack import universal_panel

    monkeypatch.setattr(universal_panel, "FIT", 8)
    monkeypatch.setattr(universal_panel, "HELD_OUT", 8)
    tab = attack_alone
    panel = tab.universal
    tab.set_eps(0.2)
    with qtbot.waitSignal(panel.fitted, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    assert res.v.abs().max() <= 0.2 + 1e-6 and res.v.shape == (1, 28, 28)
    model = tab.state.model
    x = apply(to_tensor(tab.state.image), res.v)
    top = model.predict(x, k=1)[0]
    assert panel.applied.caption.text().endswith(
        f"{model.class_names[top.indices[0]]} ({top.probs[0] * 100:.1f} %)"
    )
    assert f"{res.held_out_rate:.1%} of 8 held-out digits fooled" in panel.status.text()


def test_patch_panel_prediction_follows_the_drag(qtbot, attack_alone, monkeypatch, tmp_path):
    from advstudio.core.attacks.patch import fixed_placement, paste
    from advstudio.core.images import to_tensor
    from advstudio.ui.attack import patch_panel

    monkeypatch.setattr(patch_panel, "TRAIN", 8)
    monkeypatch.setattr(patch_panel, "TEST", 8)
    tab = attack_alone
    panel = tab.patch
    panel.steps.setValue(3)
    panel.area.setValue(20)
    with qtbot.waitSignal(panel.trained, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    side = res.patch.shape[-1]
    assert side == 13  # sqrt(0.2 * 784) = 12.5 -> 13
    model = tab.state.model
    for top, left in ((0, 0), (15, 15)):
        with qtbot.waitSignal(panel.predicted, timeout=5_000) as moved:
            panel.move_patch(top, left)
        x, _ = paste(
            to_tensor(tab.state.image),
            res.patch,
            fixed_placement(1, top + side / 2, left + side / 2),
        )
        best = model.predict(x, k=1)[0]
        assert moved.args[0] == (
            f"With the patch: {model.class_names[best.indices[0]]} ({best.probs[0] * 100:.1f} %)"
        )
        assert torch.equal(x[:, :, :top], to_tensor(tab.state.image)[:, :, :top])
    assert panel.export_to(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # about 25 s there: the attack, then captum's first import
def test_explain_panel_shows_four_maps_of_the_latest_attack(qtbot, attack_alone):
    tab = attack_alone
    tab.access.setCurrentIndex(tab.access.findData("white-box"))
    tab.attack.setCurrentIndex(tab.attack.findData("fgsm"))
    tab.set_eps(0.3)
    with qtbot.waitSignal(tab.attacked, timeout=60_000):
        qtbot.mouseClick(tab.attack_button, Qt.MouseButton.LeftButton)
    panel = tab.explain
    panel.method.setCurrentIndex(panel.method.findData("gradcam"))
    with qtbot.waitSignal(panel.explained, timeout=60_000) as blocker:
        panel.run()
    ex = blocker.args[0]
    assert ex.true_class == tab.outcome.label
    for (image, role), view in panel.views.items():
        # each map scaled to its maximum; a Grad-CAM after its ReLU may be all zero
        want = float(ex.maps[image, role, "gradcam"].max() > 0)
        assert view.pixels is not None and view.pixels.max() == pytest.approx(want)
