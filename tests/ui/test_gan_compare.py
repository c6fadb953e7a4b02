"""The GAN tab on the user's colour data (the shared data-set picker, a judge that fits the
data or none, said in the tab) and side-by-side runs overlaid on every plot."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.core.colour_data import CLASSES, colour_classifier, colour_folder


@pytest.fixture
def gan(build_tab):
    tab = build_tab("gan")
    tab.batch.setValue(8)
    tab.eval_every.setValue(0)
    return tab


@pytest.fixture
def shapes(tmp_path):
    return colour_folder(tmp_path / "shapes", per_class=4, junk=False)


def _train(qtbot, gan, steps):
    gan.steps.setValue(steps)
    with qtbot.waitSignal(gan.trained, timeout=120_000) as blocker:
        qtbot.mouseClick(gan.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gan.start_button.isEnabled())
    return blocker.args[0]


def test_a_colour_folder_trains_in_colour_and_the_tab_says_there_is_no_judge(qtbot, gan, shapes):
    gan.use_folder(str(shapes))
    assert gan.picker.dataset() == f"folder:{shapes}"
    # the picker's set comes in at 32×32 RGB: the size and channels follow it
    assert (gan.image_size.currentData(), gan.channels.currentData()) == (32, 3)
    assert "No judge" in gan.judge_label.text() and "digit CNN only reads digits" in (
        gan.judge_label.text()
    )
    gan.eval_every.setValue(2)
    result = _train(qtbot, gan, 2)
    assert result.config.dataset == f"folder:{shapes}" and result.config.judge == "none"
    assert result.judge == "none" and result.evaluation == {}
    grid = gan.samples.pixels
    assert grid.ndim == 3 and grid.shape[-1] == 3
    assert abs(grid[..., 0] - grid[..., 1]).max() > 1e-3  # colour, not grey repeated
    assert gan.loss_plot.points("loss_d") == 2 and gan.cover_plot.points("classes") == 0
    assert "Not judged" in gan.status.text()


def test_the_open_model_judges_when_its_classes_are_the_data_sets(qtbot, gan, shapes):
    clf = colour_classifier()
    clf.class_names = sorted(CLASSES)  # the folder's classes, in its order
    gan.state.set_model("file:/models/shapes.pt2", clf)
    gan.use_folder(str(shapes))
    assert "Judge: your model colour-net" in gan.judge_label.text()
    gan.eval_every.setValue(2)
    result = _train(qtbot, gan, 2)
    assert result.config.judge == "file:/models/shapes.pt2" and result.judge == "colour-net"
    assert set(result.evaluation) >= {"classes_covered", "class_entropy", "frechet"}
    assert gan.cover_plot.points("classes") == 2 == gan.fid_plot.points("Fréchet")
    assert "judge: colour-net" in gan.status.text()
    # back on the digits, the digit CNN judges again
    gan.picker.set_dataset("digits")
    assert gan.judge_label.text().startswith("Judge: the built-in digit CNN")
    assert (gan.image_size.currentData(), gan.channels.currentData()) == (28, 1)


def test_compared_runs_share_every_plot_with_a_legend_entry_each(qtbot, gan):
    gan.compare.setChecked(True)
    gan.eval_every.setValue(2)
    first = _train(qtbot, gan, 2)
    gan.loss.setCurrentIndex(gan.loss.findData("hinge"))
    gan.spectral_norm.setChecked(True)
    second = _train(qtbot, gan, 3)
    assert (first.config.loss, second.config.loss) == ("non-saturating", "hinge")
    labels = [run["label"] for run in gan.runs]
    assert labels == ["1: BCE, batch 8", "2: hinge, SN, batch 8"]
    for plot in gan._plots():
        assert plot.legend_labels() == labels, plot
    for label, steps, evals in zip(labels, (2, 3), (2, 3)):  # judged at 0, every 2, the end
        assert gan.loss_plot.points(f"{label} loss D") == steps
        assert gan.loss_plot.points(f"{label} loss G") == steps
        assert gan.d_plot.points(f"{label} D(x)") == steps
        assert gan.grad_plot.points(f"{label} grad G") == steps
        assert gan.div_plot.points(f"{label} diversity") == steps
        assert gan.cover_plot.points(f"{label} classes") == evals
        assert gan.fid_plot.points(f"{label} Fréchet") == evals
    # the kept run's curve is its own: the first run's losses, replayed unchanged
    step_rows = [row for row in gan.runs[0]["rows"] if "loss_d" in row]
    assert step_rows[0]["loss_d"] == pytest.approx(
        float(gan.loss_plot.series[f"{labels[0]} loss D raw"].y[0])
    )
    # a hinge run is on the D plot: every run's raw outputs, not sigmoid(D)
    assert gan.d_raw and gan.d_plot.series[f"{labels[0]} D(x)"].y[0] == pytest.approx(
        step_rows[0]["out_real"]
    )
    assert "run 1: BCE" in gan.status.text() and "run 2: hinge" in gan.status.text()
    gan.clear_runs()
    assert gan.runs == []  # the plots are back to one run's empty curves
    for plot in gan._plots():
        assert not set(labels) & set(plot.legend_labels())
        assert all(series.n == 0 for series in plot.series.values())
    gan.compare.setChecked(False)
    _train(qtbot, gan, 1)  # alone again: the single run's curves, no run legend
    assert gan.loss_plot.points("loss_d") == 1 and len(gan.runs) == 1


def test_the_d_plot_shows_raw_outputs_for_a_loss_other_than_bce(qtbot, gan):
    gan.loss.setCurrentIndex(gan.loss.findData("wgan-gp"))
    _train(qtbot, gan, 2)
    rows = [row for row in gan.rows if "out_real" in row]
    assert list(gan.d_plot.series["D(x)"].y) == pytest.approx([r["out_real"] for r in rows])
    assert "D(G(z)) after G step" not in gan.d_plot.series  # only measured as a probability
    assert gan.d_plot.plot.getAxis("left").labelText == "D's raw output"


def test_a_run_that_fails_at_once_leaves_no_legend_entry(qtbot, gan, job_ended, tmp_path):
    gan.compare.setChecked(True)
    _train(qtbot, gan, 1)
    gan.use_folder(str(tmp_path / "gone"))  # no such folder: the job fails before a step
    errors = []
    with job_ended(gan.jobs, timeout=60_000):
        gan.start().errored.connect(errors.append)
    assert "not found" in str(errors[0])
    assert [run["label"] for run in gan.runs] == ["1: BCE, batch 8"]
    assert gan.loss_plot.legend_labels() == ["1: BCE, batch 8"]
    assert gan.loss_plot.points("1: BCE, batch 8 loss D") == 1  # the kept run, replayed
