"""The Defence tab through the real window: runs overlay their curves, the table gets the final
figures, and a trained model goes to the Attack tab."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


@pytest.fixture
def defence(qtbot, window):
    qtbot.waitUntil(lambda: window.defence_tab is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.defence_host)
    return window.defence_tab


def _choose(tab, key):
    tab.recipe.setCurrentIndex(tab.recipe.findData(key))


def test_standard_run_then_attack_this_model(qtbot, window, defence):
    _choose(defence, "standard")
    defence.arch.setCurrentIndex(defence.arch.findData("digits-mlp"))
    defence.epochs.setValue(1)
    assert defence.rows["epochs"].isVisibleTo(defence) and not defence.rows["labels"].isVisibleTo(defence)
    with qtbot.waitSignal(defence.run_done, timeout=180_000) as blocker:
        qtbot.mouseClick(defence.train_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert 0.85 < result.metrics["clean_acc"] <= 1.0
    assert result.metrics["pgd_acc"] <= result.metrics["clean_acc"]
    assert defence.table.rowCount() == 1 and "%" in defence.table.item(0, 2).text()
    assert defence.loss_plot.points("1: Standard training raw") > 10
    assert defence.acc_plot.points("1: Standard training clean") >= 1

    defence.table.selectRow(0)
    assert defence.attack_button.isEnabled()
    qtbot.mouseClick(defence.attack_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.state.model_key == f"file:{result.save_path}", timeout=20_000)
    assert window.tabs.currentWidget() is window.attack_host


def test_supervised_baseline_run_adds_a_second_overlay(qtbot, defence):
    _choose(defence, "supervised")
    defence.vat_steps.setValue(20)
    assert defence.rows["labels"].isVisibleTo(defence)
    with qtbot.waitSignal(defence.run_done, timeout=120_000) as blocker:
        defence.start()
    result = blocker.args[0]
    assert result.labelled == 100 and 0.0 <= result.test_acc <= 1.0
    assert defence.table.rowCount() == 1
    assert "100 labels" in defence.table.item(0, 5).text()
    assert defence.acc_plot.points("1: Supervised only, same labels test") >= 1


def test_training_on_a_labelled_folder(qtbot, defence, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    for name, value in (("a", 30), ("b", 220)):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(np.full((20, 20), value, np.uint8) + rng.integers(0, 9, (20, 20),
                                                                               dtype=np.uint8)
                            ).save(tmp_path / name / f"{i}.png")
    _choose(defence, "standard")
    defence.use_folder(str(tmp_path))
    defence.arch.setCurrentIndex(defence.arch.findData("digits-mlp"))
    defence.epochs.setValue(2)
    defence.batch.setValue(4)
    assert defence.rows["data"].isVisibleTo(defence)
    with qtbot.waitSignal(defence.run_done, timeout=120_000) as blocker:
        defence.start()
    result = blocker.args[0]
    assert result.config.dataset == f"folder:{tmp_path}"
    assert result.metrics["clean_acc"] == 1.0
