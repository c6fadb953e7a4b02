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
