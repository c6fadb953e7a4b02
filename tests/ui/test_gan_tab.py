"""The GAN tab, built alone on a small app state: live curves, samples, pause/stop, exports."""

from __future__ import annotations

import csv

import pytest
import torch
from PySide6.QtCore import Qt

from advstudio.core.gan.networks import build_networks


@pytest.fixture
def gan(build_tab):
    tab = build_tab("gan")
    tab.batch.setValue(16)
    tab.eval_every.setValue(0)
    return tab


def test_training_streams_curves_and_samples_then_exports(qtbot, gan, tmp_path):
    gan.steps.setValue(24)
    with qtbot.waitSignal(gan.trained, timeout=120_000) as blocker:
        qtbot.mouseClick(gan.start_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result.step == 24
    qtbot.waitUntil(lambda: gan.start_button.isEnabled())
    assert gan.loss_plot.points("loss_d") == 24 == gan.loss_plot.points("loss_g (smoothed)")
    assert gan.d_plot.points("D(x)") == 24
    assert [r["step"] for r in gan.rows] == list(range(1, 25))
    assert gan.samples.pixels is not None and gan.timelapse.count() >= 1
    assert "Done: 24 steps" in gan.status.text()

    path = gan.save_generator(tmp_path / "g.pt")
    payload = torch.load(path, weights_only=True)
    meta = payload["meta"]
    g, _ = build_networks(meta["arch"], meta["latent_dim"], width=meta["width"])
    g.load_state_dict(payload["state_dict"])
    gan.export_samples(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 500
    gan.export_metrics(tmp_path / "m.csv")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 24 and float(rows[0]["loss_d"]) == pytest.approx(gan.rows[0]["loss_d"])
    row = gan.interpolate()
    assert row.shape[1] > row.shape[0] * 5  # a strip of 10 images


def test_pause_then_stop_keeps_the_curves(qtbot, gan, job_ended):
    gan.steps.setValue(5000)
    with job_ended(gan.jobs, timeout=60_000) as ended:
        worker = gan.start()
        qtbot.waitUntil(lambda: gan.loss_plot.points("loss_d") >= 3, timeout=60_000)
        with qtbot.waitSignal(worker.paused, timeout=10_000):
            qtbot.mouseClick(gan.pause_button, Qt.MouseButton.LeftButton)
        assert gan.pause_button.text() == "Resume"
        steps_when_paused = gan.loss_plot.points("loss_d")
        with qtbot.waitSignals([worker.aborted, worker.finished], order="strict", timeout=10_000):
            qtbot.mouseClick(gan.stop_button, Qt.MouseButton.LeftButton)
    assert ended.worker is worker
    assert "Stopped at step" in gan.status.text()
    assert gan.loss_plot.points("loss_d") in (steps_when_paused, steps_when_paused + 1)
    assert gan.result is None and gan.start_button.isEnabled()
    assert gan.csv_button.isEnabled()  # the partial metrics can still be exported


def test_training_on_an_image_folder(qtbot, gan, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (50 + i, 40, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    (tmp_path / "bad.png").write_bytes(b"nope")
    gan.use_folder(str(tmp_path))
    gan.channels.setCurrentIndex(gan.channels.findData(3))
    gan.batch.setValue(4)
    gan.steps.setValue(3)
    logs = []
    with qtbot.waitSignal(gan.trained, timeout=60_000) as blocker:
        worker = gan.start()
        worker.log.connect(logs.append)  # events arrive queued: none is missed
    result = blocker.args[0]
    assert result.config.dataset == f"folder:{tmp_path}" and result.samples.shape[-1] == 3
    assert result.evaluation == {}  # the digit judge only runs on digits
    assert any("1 unreadable file(s) skipped" in t for t in logs)


def test_offline_torchvision_set_gives_a_clear_message(qtbot, gan, monkeypatch, job_ended):
    import torchvision.datasets as tvd

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvd, "FashionMNIST", Offline)
    gan.data.setCurrentIndex(gan.data.findData("torchvision:fashion-mnist"))
    gan.data.activated.emit(gan.data.currentIndex())
    assert gan.image_size.isEnabled()
    errors = []
    with job_ended(gan.jobs, timeout=30_000) as ended:
        gan.start().errored.connect(errors.append)
    [error] = errors
    assert ended.worker.title.startswith("Training") and "name resolution" in str(error)
    assert "need to be online once" in gan.status.text()
    assert gan.start_button.isEnabled()


def test_loss_page_builds_the_config_and_tooltips_name_the_difficulty(gan):
    from advstudio.core.gan.stabilisers import EXPLANATIONS

    gan.loss.setCurrentIndex(gan.loss.findData("wgan-gp"))
    assert gan.gp_weight.isEnabled() and not gan.smoothing.isEnabled()
    gan.lr_preset.setCurrentIndex(gan.lr_preset.findData("ttur"))
    gan.lr_preset.activated.emit(gan.lr_preset.currentIndex())
    for box in (gan.spectral_norm, gan.r1, gan.ema, gan.minibatch_std, gan.conditional):
        box.setChecked(True)
    c = gan.config()
    assert (c.loss, c.gp_weight, c.lr_g, c.lr_d) == ("wgan-gp", 10.0, 1e-4, 4e-4)
    assert c.spectral_norm and c.r1_gamma == 1.0 and c.ema_decay == 0.999
    assert c.minibatch_std and c.conditional and not c.d_batch_norm
    assert gan.spectral_norm.toolTip() == EXPLANATIONS["spectral_norm"]
    assert "collapse" in gan.minibatch_std.toolTip()
    gan.lr_g.setValue(3e-4)
    assert gan.lr_preset.currentData() == "custom"
    gan.arch.setCurrentIndex(gan.arch.findData("gan"))
    assert not gan.conditional.isEnabled() and not gan.config().conditional


def test_the_tab_starts_at_the_measured_defaults_and_sets_the_width(gan):
    from advstudio.core.gan.config import GanConfig

    defaults, c = GanConfig(), gan.config()
    assert (c.width, c.lr_g, c.lr_d, c.ema_decay, c.loss) == (
        defaults.width,
        defaults.lr_g,
        defaults.lr_d,
        defaults.ema_decay,
        defaults.loss,
    )
    assert gan.lr_preset.currentData() == "default"
    assert gan.describe(GanConfig()) == "BCE"  # the legend names only what differs
    gan.width.setValue(64)
    gan.lr_preset.setCurrentIndex(gan.lr_preset.findData("dcgan"))
    gan.lr_preset.activated.emit(gan.lr_preset.currentIndex())
    c = gan.config()
    assert (c.width, c.lr_g, c.lr_d) == (64, 2e-4, 2e-4)
    assert gan.describe(c) == "BCE, lr 0.0002/0.0002, batch 16, width 64"  # batch: the fixture's
    gan.arch.setCurrentIndex(gan.arch.findData("gan"))
    assert not gan.width.isEnabled()  # the MLP's layer sizes are fixed


def test_a_conditional_run_shows_a_row_per_class_and_the_picked_class(qtbot, gan):
    gan.steps.setValue(2)
    gan.conditional.setChecked(True)
    gan.loss.setCurrentIndex(gan.loss.findData("hinge"))
    with qtbot.waitSignal(gan.trained, timeout=120_000) as blocker:
        qtbot.mouseClick(gan.start_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: gan.start_button.isEnabled())
    assert result.samples.shape[0] == 10 * 30 + 2  # ten rows of 28 px tiles, 2 px padding
    assert gan.class_pick.isEnabled()
    gan.class_pick.setCurrentIndex(gan.class_pick.findData(3))
    assert gan.samples.pixels.shape == (8 * 30 + 2,) * 2 and "class 3" in gan.samples.caption.text()
    assert gan.interpolate().shape[1] > 200


def test_a_sustained_d_win_shows_its_badge_in_a_short_run(gan):
    """Issue #19: D(x) near 0.93 and D(G(z)) near 0.08 for 40 steps of a 300-step run showed no
    badge; the tab now shows "The discriminator wins" by step 50."""
    import math

    from advstudio.core.jobs import Metrics

    for step in range(1, 51):
        gan._on_metrics(
            Metrics(
                step,
                {
                    "loss_d": 0.3,
                    "loss_g": 3.5,
                    "d_x": 0.93 + 0.05 * math.sin(step),
                    "d_g_z1": 0.08 + 0.05 * math.sin(step / 2),
                    "d_g_z2": 0.03,
                    "grad_norm_d": 5.0,
                    "grad_norm_g": 40.0,
                    "diversity": 3.8,
                },
            )
        )
        if step == 25:
            assert "discriminator wins" not in gan.badges.text()  # 25 steps: not yet sustained
    assert "The discriminator wins" in gan.badges.text()
    assert "over the last 30 steps" in gan.badges.text()


def test_disabled_after_training_buttons_say_why(gan):
    from advstudio.ui.gan.tab import NOT_TRAINED, STOPPED

    for b in (gan.interp_button, gan.save_button, gan.grid_button):
        assert not b.isEnabled() and b.toolTip().startswith(NOT_TRAINED)
    assert "train a GAN first" in gan.csv_button.toolTip()
    gan.rows = [{"step": 1, "loss_d": 1.0}]
    gan.result = None  # what a stopped run leaves
    gan._on_finished()
    assert gan.csv_button.isEnabled() and "train a GAN first" not in gan.csv_button.toolTip()
    for b in (gan.interp_button, gan.save_button, gan.grid_button):
        assert not b.isEnabled() and b.toolTip().startswith(STOPPED)
    # once enabled, the usual tooltip is back
    from advstudio.ui.widgets.why_disabled import set_enabled

    set_enabled(gan.interp_button, True)
    assert (
        gan.interp_button.toolTip() == "Walk in a straight line between two random latent vectors"
    )
