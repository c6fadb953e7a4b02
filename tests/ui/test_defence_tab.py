"""The Defence tab: runs overlay their curves, the table gets the final figures (the tab built
alone on a small app state), and, through the real window, a trained model goes to the Attack
tab and runs are recorded."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


@pytest.fixture
def defence(build_tab):
    tab = build_tab("defence")
    tab.robust_check.setChecked(False)  # its own test below
    return tab


@pytest.fixture
def defence_in_window(qtbot, window):
    qtbot.waitUntil(lambda: window.defence_tab is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.defence_host)
    window.defence_tab.robust_check.setChecked(False)  # its own test below
    return window.defence_tab


def _choose(tab, key):
    tab.recipe.setCurrentIndex(tab.recipe.findData(key))


def test_standard_run_then_attack_this_model(qtbot, window, defence_in_window, job_ended):
    defence = defence_in_window
    _choose(defence, "standard")
    defence.arch.setCurrentIndex(defence.arch.findData("digits-mlp"))
    defence.epochs.setValue(1)
    assert defence.rows["epochs"].isVisibleTo(defence) and not defence.rows["labels"].isVisibleTo(
        defence
    )
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
    # the model loads, then the Attack tab checks its input gradients: both on jobs
    with job_ended(window.jobs, title="Checking gradients", timeout=20_000):
        qtbot.mouseClick(defence.attack_button, Qt.MouseButton.LeftButton)
    assert window.state.model_key == f"file:{result.save_path}"
    assert window.tabs.currentWidget() is window.attack_host
    assert window.attack_tab.whitebox_allowed


def test_supervised_baseline_run_adds_a_second_overlay(qtbot, defence):
    _choose(defence, "supervised")
    defence.vat_steps.setValue(20)
    assert defence.rows["labels"].isVisibleTo(defence)
    with qtbot.waitSignal(defence.run_done, timeout=120_000) as blocker:
        defence.start()
    result = blocker.args[0]
    assert result.labelled == 100 and 0.0 <= result.test_acc <= 1.0
    assert defence.table.rowCount() == 1
    assert "100 labels" in defence.table.item(0, 6).text()
    assert defence.acc_plot.points("1: Supervised only test") >= 1


def test_training_on_a_labelled_folder(qtbot, defence, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    for name, value in (("a", 30), ("b", 220)):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(
                np.full((20, 20), value, np.uint8) + rng.integers(0, 9, (20, 20), dtype=np.uint8)
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


def test_each_trained_model_gets_its_robust_accuracy(qtbot, window, defence_in_window):
    from advstudio.core.attacks.robust import RobustConfig, run_robust
    from advstudio.core.jobs import drive
    from advstudio.ui.defence.tab import BASELINE_COL, QUICK_BUDGET

    defence = defence_in_window
    _choose(defence, "standard")
    defence.arch.setCurrentIndex(defence.arch.findData("digits-mlp"))
    defence.epochs.setValue(1)
    defence.robust_check.setChecked(True)
    defence.robust_n.setValue(16)
    with qtbot.waitSignal(defence.run_done, timeout=180_000) as blocker:
        defence.start()
    result = blocker.args[0]
    assert defence.table.item(0, BASELINE_COL).text() == "measuring…"
    worker = defence.robust_worker
    qtbot.waitUntil(lambda: worker.is_done, timeout=180_000)
    robust = defence.runs[0]["robust"]
    assert robust.n_images == 16 and robust.eps == result.config.eps
    assert robust.robust_accuracy <= robust.fgsm_accuracy <= robust.clean_accuracy
    # one set of images per row (issue #19): the held-out evaluation ran on the same 16 digits,
    # so the table's Clean and FGSM are the robust check's own, and the cells say how many
    assert result.config.eval_images == 16
    clean_col, fgsm_col = 2, 3
    assert defence.table.item(0, clean_col).text() == f"{robust.clean_accuracy * 100:.1f} %"
    assert defence.table.item(0, fgsm_col).text() == f"{robust.fgsm_accuracy * 100:.1f} %"
    for col in (clean_col, fgsm_col, 4):
        assert "on 16 held-out test digits" in defence.table.item(0, col).toolTip()
    assert "16 held-out test digits" in defence.table.item(0, BASELINE_COL).toolTip()
    assert "same images" in defence.table.horizontalHeaderItem(BASELINE_COL).toolTip()
    # the line under the controls gives the table's FGSM figure, not another
    fgsm_shown = defence.table.item(0, fgsm_col).text().replace(" %", "")
    assert f"FGSM alone {fgsm_shown} %" in defence.status.text() or (
        f"FGSM alone says {float(fgsm_shown):.0f} %" in defence.status.text()
    )
    assert defence.table.item(0, BASELINE_COL).text() == f"{robust.robust_accuracy * 100:.1f} %"
    assert "APGD" in defence.table.item(0, BASELINE_COL).toolTip().upper()
    # the same job headless gives the same figure (seeded)
    again = drive(
        run_robust(
            RobustConfig(
                model=f"file:{result.save_path}",
                eps=robust.eps,
                n_images=16,
                device="cpu",
                **QUICK_BUDGET,
            )
        )
    ).result
    assert again.robust_accuracy == robust.robust_accuracy
    kinds = [r.kind for r in window.jobs.store.list_runs()]
    assert "robust" in kinds and "train" in kinds


def test_a_baseline_far_below_fgsm_is_flagged_as_gradient_masking(defence):
    from advstudio.core.attacks.robust import RobustResult
    from advstudio.ui.defence.tab import BASELINE_COL

    entry = {"index": 7, "label": "7: Masked", "kind": "train"}
    defence.table.insertRow(0)
    from PySide6.QtWidgets import QTableWidgetItem

    first = QTableWidgetItem("7")
    first.setData(Qt.ItemDataRole.UserRole, 7)
    defence.table.setItem(0, 0, first)
    entry["robust"] = RobustResult(
        eps=0.1,
        attacks=("apgd-ce",),
        n_images=100,
        clean_accuracy=0.95,
        robust_accuracy=0.1,
        fgsm_accuracy=0.9,
    )
    defence._show_robust(entry)
    assert "masked" in defence.table.item(0, BASELINE_COL).toolTip()
    assert "gradient masking" in defence.status.text()


def test_attack_this_model_says_why_it_is_disabled(defence):
    from PySide6.QtWidgets import QTableWidgetItem

    from advstudio.ui.defence.tab import NO_RUN_SELECTED

    assert not defence.attack_button.isEnabled()
    assert defence.attack_button.toolTip().startswith(NO_RUN_SELECTED)
    entry = {"index": 1, "label": "1: Detector", "kind": "detector", "result": object()}
    defence.runs.append(entry)
    defence.table.insertRow(0)
    item = QTableWidgetItem("1")
    item.setData(Qt.ItemDataRole.UserRole, 1)
    defence.table.setItem(0, 0, item)
    defence.table.selectRow(0)
    assert not defence.attack_button.isEnabled()
    assert "detector is no classifier" in defence.attack_button.toolTip()
    entry["kind"], entry["result"] = "train", None
    defence._update_attack_button()
    assert "has not finished" in defence.attack_button.toolTip()
