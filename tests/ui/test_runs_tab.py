"""The Runs tab, built alone on a small app state: GUI jobs are recorded, filtered, plotted,
compared, rerun, resumed, exported and deleted; through the real window, every lab tab's job
exports as a config file."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest


@pytest.fixture
def runs(build_tab):
    return build_tab("runs")


@pytest.fixture
def runs_in_window(qtbot, window):
    qtbot.waitUntil(lambda: window.runs_tab is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.runs_host)
    return window.runs_tab


def _start_evaluation(jobs, batch_size):
    """The job the window's Jobs ▸ Evaluate starts, recorded the same way."""
    from advstudio.core.evaluate import EvaluateConfig, evaluate

    config = EvaluateConfig(model="digits-cnn", device="cpu", batch_size=batch_size)
    return jobs.start(
        lambda: evaluate(config), f"Evaluating {config.model}", record=("evaluate", config)
    )


def _evaluate(job_ended, jobs, batch_size):
    with job_ended(jobs, timeout=60_000) as ended:
        _start_evaluation(jobs, batch_size)
    return ended.worker


def test_gui_jobs_are_recorded_and_compared(qtbot, lab, runs, tmp_path, monkeypatch, job_ended):
    _evaluate(job_ended, lab.jobs, 100)
    _evaluate(job_ended, lab.jobs, 250)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 2, timeout=5000)
    assert {r.kind for r in runs.runs} == {"evaluate"}
    assert all(str(r.status) == "finished" for r in runs.runs)
    assert "accuracy" in runs.table.item(0, 6).text()

    runs.select([r.id for r in runs.runs])
    runs.metric_choice.setCurrentText("accuracy")
    assert runs.plotted_curves() == 2  # overlay to compare

    runs.status.setCurrentIndex(runs.status.findData("failed"))
    assert runs.table.rowCount() == 0
    runs.status.setCurrentIndex(0)

    runs.select([runs.runs[0].id])
    monkeypatch.setattr(
        "advstudio.ui.runs.tab.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(tmp_path / "run.zip"), ""),
    )
    exported = runs.export_selected()
    assert "metrics.jsonl" in " ".join(zipfile.ZipFile(exported).namelist())

    with job_ended(lab.jobs, timeout=60_000) as ended:
        worker = runs.rerun_selected()
    assert worker is not None and ended.worker is worker
    qtbot.waitUntil(lambda: runs.table.rowCount() == 3, timeout=5000)
    newest = runs.runs[0]
    assert runs.store.rerun_config(newest.id) == runs.store.rerun_config(runs.runs[1].id)

    monkeypatch.setattr(runs, "confirm_delete", lambda n: True)
    runs.select([newest.id])
    runs.delete_selected()
    assert runs.table.rowCount() == 2


def test_a_cancelled_job_is_recorded_as_cancelled(qtbot, lab, runs, job_ended):
    with job_ended(lab.jobs) as ended:
        worker = _start_evaluation(lab.jobs, batch_size=1)
        qtbot.waitUntil(lambda: worker.last_progress is not None, timeout=5000)
        with qtbot.waitSignal(worker.aborted):
            worker.cancel()  # what the status bar's Cancel does
    assert ended.worker is worker
    qtbot.waitUntil(lambda: runs.table.rowCount() == 1, timeout=5000)
    assert str(runs.runs[0].status) == "cancelled"


def test_a_stopped_training_resumes_from_the_runs_tab(qtbot, lab, runs, job_ended):
    from PySide6.QtCore import Qt

    from advstudio.core.gan import GanConfig
    from advstudio.core.gan.train import train_gan
    from advstudio.core.jobs import Metrics

    config = GanConfig(
        arch="gan",
        batch_size=8,
        steps=12,
        eval_every=0,
        preview_rate=0.0,
        checkpoint_every=3,
        seed=1,
    )
    steps: list[int] = []

    def on_metrics(m: Metrics) -> None:
        if "loss_d" in m.values:
            steps.append(m.step)
            if m.step == 7:
                worker.cancel()

    with (
        qtbot.waitSignal(lab.jobs.job_started) as started,
        job_ended(lab.jobs, timeout=60_000) as ended,
    ):
        worker = lab.jobs.start(
            lambda: train_gan(config),
            "tiny GAN",
            record=("gan", config, train_gan),
            connect=lambda w: w.metrics.connect(on_metrics),
        )
    assert started.args == [worker] and ended.worker is worker and worker.cancel_requested
    # stopped early; a step already in flight when cancel was asked may still report
    assert steps[:7] == list(range(1, 8)) and steps[-1] < config.steps
    qtbot.waitUntil(lambda: runs.table.rowCount() == 1, timeout=5000)
    stopped = runs.runs[0]
    assert str(stopped.status) == "cancelled"
    runs.select([stopped.id])
    assert runs.resume_button.isEnabled() and runs.rerun_button.isEnabled()

    resumed_steps: list[int] = []
    runs.rerun_started.connect(
        lambda w: w.metrics.connect(
            lambda m: resumed_steps.append(m.step) if "loss_d" in m.values else None
        )
    )
    with job_ended(lab.jobs, timeout=60_000):
        qtbot.mouseClick(runs.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: (
            runs.table.rowCount() == 2 and all(str(r.status) == "finished" for r in runs.runs[:1])
        ),
        timeout=60_000,
    )
    # continued after the last checkpoint before the stop (step 6), up to the end
    assert resumed_steps[0] == 7 and resumed_steps[-1] == config.steps
    assert runs.runs[0].title.startswith("Resume of")
    runs.select([runs.runs[0].id])
    assert not runs.resume_button.isEnabled()  # a finished run has nothing to resume


def test_a_gan_run_shows_its_final_sample_grid_and_opens_its_folder(
    qtbot, lab, runs, monkeypatch, job_ended
):
    from PySide6.QtCore import Qt

    from advstudio.core.gan import GanConfig
    from advstudio.core.gan.train import train_gan

    config = GanConfig(arch="gan", batch_size=8, steps=3, eval_every=0, preview_rate=0.0, seed=1)
    with job_ended(lab.jobs, timeout=60_000):
        lab.jobs.start(lambda: train_gan(config), "tiny GAN", record=("gan", config, train_gan))
    _evaluate(job_ended, lab.jobs, 50)  # a run without images
    qtbot.waitUntil(lambda: runs.table.rowCount() == 2, timeout=5000)
    gan_run = next(r for r in runs.runs if r.kind == "gan")
    assert "samples.png" in runs.store.artifacts(gan_run.id)

    runs.select([gan_run.id])
    assert not runs.thumbnail.isHidden()
    shown = runs.thumbnail.pixmap()
    assert max(shown.width(), shown.height()) == runs.THUMBNAIL_PX
    runs.select([next(r.id for r in runs.runs if r.kind == "evaluate")])
    assert runs.thumbnail.isHidden()

    opened = []
    monkeypatch.setattr(
        "advstudio.ui.runs.tab.QDesktopServices.openUrl",
        lambda url: opened.append(url.toLocalFile()) or True,
    )
    runs.select([gan_run.id])
    qtbot.mouseClick(runs.folder_button, Qt.MouseButton.LeftButton)
    assert opened == [str(runs.store.run_path(gan_run.id))]


def test_export_job_as_config_from_every_lab_tab(
    qtbot, window, runs_in_window, tmp_path, monkeypatch
):
    from advstudio.cli import read_config_file
    from advstudio.core.jobkinds import build_config

    target = {}
    monkeypatch.setattr(
        "advstudio.ui.widgets.config_export.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(target["path"]), ""),
    )
    qtbot.waitUntil(lambda: window.state.model is not None, timeout=30_000)
    expected = {
        window.image_tab: "evaluate",
        window.attack_host: "sweep",
        window.gan_host: "gan",
        window.defence_host: "train",
        window.poisoning_host: "poison",
    }
    for host, kind in expected.items():
        window.tabs.setCurrentWidget(host)
        target["path"] = tmp_path / f"{kind}.toml"
        path = window.export_job_config()
        data = read_config_file(path)
        assert data.pop("kind") == kind
        config = build_config(kind, data)
        if host is window.image_tab:  # the evaluation of the current model
            assert (config.model, config.device) == (window.state.model_key, "cpu")
        else:  # the file gives back the very job the tab would start
            now = host.content.job_config()
            if getattr(config, "save_path", None):  # named by the second it was asked for
                assert Path(config.save_path).parent == Path(now[1].save_path).parent
                config = dataclasses.replace(config, save_path=now[1].save_path)
            assert (kind, config) == now, kind

    window.tabs.setCurrentWidget(window.runs_host)
    assert window.export_job_config() is None  # nothing to export here
    assert "no job to export" in window.status_message.text()


def test_export_config_of_a_recorded_run(qtbot, lab, runs, tmp_path, monkeypatch, job_ended):
    from advstudio.cli import read_config_file

    _evaluate(job_ended, lab.jobs, 200)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 1, timeout=5000)
    runs.select([runs.runs[0].id])
    monkeypatch.setattr(
        "advstudio.ui.widgets.config_export.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(tmp_path / "again"), ""),
    )
    path = runs.export_config_selected()
    assert path.suffix == ".toml"  # added when the user typed none
    data = read_config_file(path)
    assert data.pop("kind") == "evaluate"
    assert data == runs.store.rerun_config(runs.runs[0].id)[1]


def test_config_table_diff_resizable_splitter_and_exports(
    qtbot, lab, runs, tmp_path, monkeypatch, job_ended
):
    from PySide6.QtCore import QPoint, Qt

    _evaluate(job_ended, lab.jobs, 100)
    _evaluate(job_ended, lab.jobs, 250)
    qtbot.waitUntil(lambda: runs.table.rowCount() == 2, timeout=5000)
    table = runs.config_table

    def rows():
        return {
            table.item(r, 0).text(): [
                table.item(r, c).text() for c in range(1, table.columnCount())
            ]
            for r in range(table.rowCount())
        }

    older, newer = runs.runs[1].id, runs.runs[0].id
    runs.select([older])
    assert rows()["batch_size"] == ["100"] and rows()["model"] == ["digits-cnn"]
    runs.select([older, newer])
    assert set(rows()) == {"batch_size"}  # only what differs
    assert sorted(rows()["batch_size"]) == ["100", "250"]
    assert table.item(0, 1).background().color().name() == "#ffecb3"
    assert "1 setting differ" in runs.details.text()

    handle = runs.detail_splitter.handle(1)
    before = runs.detail_splitter.sizes()
    centre = handle.rect().center()
    qtbot.mousePress(handle, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(handle, centre + QPoint(80, 0))
    qtbot.mouseRelease(handle, Qt.MouseButton.LeftButton, pos=centre + QPoint(80, 0))
    after = runs.detail_splitter.sizes()
    assert after[0] > before[0] and sum(after) == sum(before)

    monkeypatch.setattr(
        "advstudio.ui.runs.tab.QFileDialog.getExistingDirectory",
        lambda *a, **k: str(tmp_path / "tb"),
    )
    (tmp_path / "tb").mkdir()
    qtbot.mouseClick(runs.tensorboard_button, Qt.MouseButton.LeftButton)
    files = sorted((tmp_path / "tb").glob("*/events.out.tfevents.*"))
    assert len(files) == 2 and all(f.stat().st_size > 0 for f in files)
    assert f'tensorboard --logdir "{tmp_path / "tb"}"' in runs.message.text()

    runs.select([newer])
    monkeypatch.setattr(
        "advstudio.ui.runs.tab.QFileDialog.getSaveFileName",
        lambda *a, **k: (str(tmp_path / "run.zip"), ""),
    )
    qtbot.mouseClick(runs.export_button, Qt.MouseButton.LeftButton)
    assert runs.message.text() == f"Exported {newer} to {tmp_path / 'run.zip'}"
