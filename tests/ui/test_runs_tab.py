"""The Runs tab through the real window: GUI jobs are recorded, filtered, plotted, compared,
rerun, exported and deleted."""

from __future__ import annotations

import zipfile

import pytest


@pytest.fixture
def runs(qtbot, window):
    qtbot.waitUntil(lambda: window.runs_tab is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.runs_host)
    return window.runs_tab


def _evaluate(qtbot, window, batch_size):
    worker = window.evaluate_current_model(batch_size=batch_size)
    qtbot.waitUntil(lambda: worker.is_done, timeout=60_000)
    return worker


def test_gui_jobs_are_recorded_and_compared(qtbot, window, runs, tmp_path, monkeypatch):
    _evaluate(qtbot, window, 100)
    _evaluate(qtbot, window, 250)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 2, timeout=5000)
    assert {r.kind for r in runs.runs} == {"evaluate"}
    assert all(str(r.status) == "finished" for r in runs.runs)
    assert "accuracy" in runs.table.item(0, 6).text()

    runs.select([r.id for r in runs.runs])
    runs.metric.setCurrentText("accuracy")
    assert runs.plotted_curves() == 2  # overlay to compare

    runs.status.setCurrentIndex(runs.status.findData("failed"))
    assert runs.table.rowCount() == 0
    runs.status.setCurrentIndex(0)

    runs.select([runs.runs[0].id])
    monkeypatch.setattr("advstudio.ui.runs_tab.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "run.zip"), ""))
    exported = runs.export_selected()
    assert "metrics.jsonl" in " ".join(zipfile.ZipFile(exported).namelist())

    worker = runs.rerun_selected()
    assert worker is not None
    qtbot.waitUntil(lambda: worker.is_done, timeout=60_000)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 3, timeout=5000)
    newest = runs.runs[0]
    assert runs.store.rerun_config(newest.id) == runs.store.rerun_config(runs.runs[1].id)

    monkeypatch.setattr(runs, "confirm_delete", lambda n: True)
    runs.select([newest.id])
    runs.delete_selected()
    assert runs.table.rowCount() == 2


def test_a_cancelled_job_is_recorded_as_cancelled(qtbot, window, runs):
    from PySide6.QtCore import Qt

    worker = window.evaluate_current_model(batch_size=1)
    qtbot.waitUntil(lambda: window.job_indicator.isVisible(), timeout=5000)
    qtbot.mouseClick(window.job_indicator.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: worker.is_done, timeout=10_000)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 1, timeout=5000)
    assert str(runs.runs[0].status) == "cancelled"
