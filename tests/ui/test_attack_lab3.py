"""Attack lab III in the Attack tab built alone: the robust panel's ensemble choice (AutoAttack
standard by default, the fast one on request) and its checks' warnings."""

from __future__ import annotations

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
    assert [c[0] for c in cells[3:]] == ["broken first by APGD-CE",
                                         "broken first by APGD-T (targeted DLR)",
                                         "broken first by FAB-T",
                                         "broken first by Square (query-based)"]
    assert [c[2] for c in cells[3:]] == [str(result.broken[a]) for a in result.attacks]
    # the built-in CNN passes AutoAttack's checks before the attacks
    assert not any(w.check in ("randomness", "probabilities", "zero-gradients")
                   for w in result.warnings)
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
