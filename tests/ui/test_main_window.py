"""The real main window through qtbot: drops, bad files, model switch, jobs, settings."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from PySide6.QtCore import QByteArray, Qt

from advstudio.core.models.architectures import DigitsMLP

from .conftest import drop_files


def _no_job_running(window):
    """For waitUntil: a new model starts jobs of its own (the Attack tab checks its gradients)."""
    assert [w.title for w in window.jobs.active] == []


def _prediction_top(window):
    p = window.image_tab.last_prediction
    return None if p is None else p.names[0]


def test_tabs_device_and_default_model(window):
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert names == [
        "Image",
        "Attack",
        "GAN",
        "Playground",
        "Defence",
        "Certify",
        "Poisoning",
        "Runs",
    ]
    n = torch.get_num_threads()
    assert window.device_label.text() == f"Device: CPU ({n} thread{'s' if n != 1 else ''})"
    assert window.state.model_key == "digits-cnn"
    assert window.image_tab.model_combo.currentData() == "digits-cnn"


def test_drop_a_png_shows_it_and_predicts(qtbot, window, digit_png):
    assert drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _prediction_top(window) == "7", timeout=10_000)
    assert window.state.image.path == digit_png
    shown = window.image_tab.bars.shown()
    assert shown[0][0] == "7" and shown[0][1] > 0.9
    assert abs(sum(p for _, p in shown) - 1.0) < 0.02
    assert window.image_tab.seen.pixels.shape == (28, 28, 1)
    assert "seven.png" in window.image_tab.original.caption.text()


def _huge_png(path):
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("corrupt", "damaged or truncated"),
        ("empty", "empty"),
        ("text", "not an image"),
        ("huge", "megapixels"),
        ("vanished", "does not exist"),
    ],
)
def test_bad_drops_explain_and_keep_the_previous_image(
    qtbot, window, digit_png, tmp_path, kind, expected
):
    assert drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _prediction_top(window) == "7", timeout=10_000)
    before = window.state.image
    bad = tmp_path / f"bad_{kind}.png"
    if kind == "corrupt":
        bad.write_bytes(digit_png.read_bytes()[:60])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("not pixels")
    elif kind == "huge":
        _huge_png(bad)
    with qtbot.waitSignal(window.image_tab.image_error, timeout=2000) as blocker:
        drop_files(window, bad)
    assert expected in blocker.args[0]
    assert window.image_tab.banner.isVisible()
    assert (
        expected in window.image_tab.banner.text()
        and "previous image is kept" in window.image_tab.banner.text()
    )
    assert window.state.image is before
    assert _prediction_top(window) == "7"


def test_switching_model_recomputes_predictions(qtbot, window, digit_png):
    drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _prediction_top(window) == "7", timeout=10_000)
    first = window.image_tab.last_prediction
    combo = window.image_tab.model_combo
    combo.setCurrentIndex(combo.findData("digits-mlp"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(lambda: window.state.model_key == "digits-mlp", timeout=10_000)
    qtbot.waitUntil(lambda: window.image_tab.last_prediction is not first, timeout=10_000)
    assert "MLP" in window.image_tab.model_info.text()
    assert window.settings.value("model") == "digits-mlp"
    qtbot.waitUntil(lambda: _no_job_running(window), timeout=30_000)


def test_photo_is_converted_for_the_digit_model(qtbot, window):
    from advstudio.core.resources import resources_dir

    window.image_tab.gallery.setCurrentRow(window.image_tab.gallery.count() - 1)
    item = window.image_tab.gallery.currentItem()
    window.image_tab.gallery.itemClicked.emit(item)
    qtbot.waitUntil(lambda: window.image_tab.last_prediction is not None, timeout=10_000)
    assert window.state.image.path.parent == resources_dir() / "samples"
    assert window.image_tab.seen.pixels.shape == (28, 28, 1)


def test_drop_a_user_model_file(qtbot, window, tmp_path):
    torch.save(DigitsMLP().state_dict(), tmp_path / "mine.pt")
    drop_files(window, tmp_path / "mine.pt")
    qtbot.waitUntil(lambda: window.state.model_key.endswith("mine.pt"), timeout=10_000)
    assert "mine.pt" in window.image_tab.model_combo.currentText()
    qtbot.waitUntil(lambda: _no_job_running(window), timeout=30_000)


def test_a_model_file_that_does_not_fit_shows_an_error_and_keeps_the_model(
    qtbot, window, tmp_path, monkeypatch
):
    """Weights that fit no built-in need a card; the user cancels the card dialog."""
    from advstudio.ui.widgets.model_card_dialog import ModelCardDialog

    monkeypatch.setattr(ModelCardDialog, "ask", classmethod(lambda cls, *a, **k: None))
    torch.save({"weight": torch.zeros(2)}, tmp_path / "odd.pt")
    with qtbot.waitSignal(window.models.failed, timeout=10_000):
        drop_files(window, tmp_path / "odd.pt")
    boxes = [w for w in window.image_tab.children() if w.metaObject().className() == "QMessageBox"]
    assert boxes and "odd.toml" in boxes[-1].text() and "card" in boxes[-1].text()
    assert boxes[-1].isVisible()
    assert window.state.model_key == "digits-cnn"
    assert window.image_tab.model_combo.currentData() == "digits-cnn"


def test_evaluate_job_shows_progress_then_the_accuracy(qtbot, window, job_ended):
    """(The UI thread's worst stall during this job is measured in
    benchmarks/bench_responsiveness.py; tests/ui/test_workers.py checks the job thread's lower
    priority that keeps the window responsive.)"""
    progress, indicator = [], window.job_indicator
    with job_ended(window.jobs, timeout=60_000, title="Evaluating") as ended:
        worker = window.evaluate_current_model(batch_size=20)
        worker.progress.connect(progress.append)  # events arrive queued: none is missed
        qtbot.waitUntil(lambda: indicator.isVisible(), timeout=5000)
        assert indicator.title.text().startswith("Evaluating digits-cnn")
    assert ended.worker is worker and worker.is_done
    done = [p.done for p in progress]  # throttled, but the first and the last always come
    assert done[0] == 0 and done[-1] == progress[-1].total == 1000
    assert done == sorted(done) and all(d % 20 == 0 for d in done)  # batches of 20
    assert "% correct on 1,000 test digits" in window.status_message.text()
    qtbot.waitUntil(lambda: not indicator.isVisible(), timeout=5000)


def test_cancel_from_the_status_bar(qtbot, window, job_ended):
    with job_ended(window.jobs, title="Evaluating") as ended:
        worker = window.evaluate_current_model(batch_size=1)
        qtbot.waitUntil(lambda: window.job_indicator.isVisible(), timeout=5000)
        with qtbot.waitSignals([worker.aborted, worker.finished], order="strict", timeout=10_000):
            qtbot.mouseClick(window.job_indicator.cancel_button, Qt.MouseButton.LeftButton)
    assert ended.worker is worker and worker.cancel_requested
    assert window.status_message.text() == "Evaluation cancelled."


def test_pause_from_the_status_bar(qtbot, window, job_ended):
    indicator = window.job_indicator
    with job_ended(window.jobs, title="Evaluating") as ended:
        worker = window.evaluate_current_model(batch_size=1)
        qtbot.waitUntil(lambda: indicator.isVisible(), timeout=5000)
        with qtbot.waitSignal(worker.paused, timeout=5000):
            qtbot.mouseClick(indicator.pause_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: indicator.eta.text() == "paused")
        assert indicator.pause_button.text() == "Resume"
        with qtbot.waitSignal(worker.resumed, timeout=5000):
            qtbot.mouseClick(indicator.pause_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: indicator.pause_button.text() == "Pause")
        qtbot.mouseClick(indicator.cancel_button, Qt.MouseButton.LeftButton)
    assert ended.worker is worker and worker.cancel_requested


def test_a_failing_job_shows_the_error_and_the_app_stays_usable(
    qtbot, window, monkeypatch, digit_png, job_ended
):
    def broken_loader(*_a, **_k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    # the job imports load_model when it runs, so the patched one is the one it calls
    monkeypatch.setattr("advstudio.core.models.registry.load_model", broken_loader)
    with job_ended(window.jobs, title="Evaluating"):
        window.evaluate_current_model()
    assert window.last_error_box is not None
    assert "smaller batch size" in window.last_error_box.text()
    details = window.last_error_box.detailedText()
    assert "Traceback" in details and "in broken_loader" in details
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in details
    monkeypatch.undo()
    drop_files(window, digit_png)  # still usable: the next job runs
    qtbot.waitUntil(lambda: _prediction_top(window) == "7", timeout=10_000)


def test_device_preference_is_applied_and_remembered(qtbot, window):
    window.apply_device_preference("cpu")
    assert window.settings.value("device") == "cpu"
    assert window.device_label.text().startswith("Device: CPU")


def test_geometry_is_remembered(qtbot, settings):
    from advstudio.ui.main_window import MainWindow

    first = MainWindow(settings, load_torch=False)
    qtbot.addWidget(first)
    first.resize(1010, 650)
    first.show()
    first.close()
    second = MainWindow(settings, load_torch=False)
    qtbot.addWidget(second)
    assert isinstance(settings.value("geometry"), QByteArray)
    assert second.height() == 650  # the width is clamped to the 800-px offscreen screen


def test_window_is_usable_before_torch_loads(qtbot, settings, digit_png):
    """The image can be opened while PyTorch is still loading; the model combo waits."""
    from advstudio.ui.main_window import MainWindow

    w = MainWindow(settings, load_torch=False)
    qtbot.addWidget(w)
    w.show()
    assert not w.image_tab.model_combo.isEnabled()
    assert "Loading PyTorch" in w.status_message.text()
    assert drop_files(w, digit_png)
    qtbot.waitUntil(lambda: w.state.image is not None, timeout=10_000)  # decoded on a worker
    assert w.image_tab.original.pixels is not None
    assert "Loading PyTorch" in w.status_message.text()  # a load does not hide that


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """mobilenet_v3_small 'downloadable' from a local file:// URL into a temporary hub cache."""
    import torchvision

    from advstudio.core.models import download

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    source = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), source)
    real = download.weights_download_config

    def local_config(key):
        cfg = real(key)
        return download.DownloadConfig(source.as_uri(), cfg.dest)

    monkeypatch.setattr(download, "weights_download_config", local_config)
    return source


def test_zoo_model_is_downloaded_with_consent_then_used(
    qtbot, window, fake_zoo, monkeypatch, digit_png
):
    asked = []
    monkeypatch.setattr(window.models, "ask_download", lambda key, desc: asked.append(key) or True)
    drop_files(window, digit_png)
    window.image_tab.select_model("torchvision:mobilenet_v3_small")
    qtbot.waitUntil(
        lambda: window.state.model_key == "torchvision:mobilenet_v3_small", timeout=30_000
    )
    assert asked == ["mobilenet_v3_small"]
    qtbot.waitUntil(
        lambda: (
            window.image_tab.seen.pixels is not None
            and window.image_tab.seen.pixels.shape == (224, 224, 3)
        ),
        timeout=10_000,
    )
    assert window.state.model.num_classes == 1000
    assert not window.evaluate_action.isEnabled()  # digits evaluation makes no sense here
    qtbot.waitUntil(lambda: _no_job_running(window), timeout=30_000)


def test_declined_download_keeps_the_current_model(qtbot, window, fake_zoo, monkeypatch):
    monkeypatch.setattr(window.models, "ask_download", lambda key, desc: False)
    with qtbot.waitSignal(window.models.failed, timeout=5000):
        window.image_tab.select_model("torchvision:mobilenet_v3_small")
    assert window.state.model_key == "digits-cnn"
    assert window.image_tab.model_combo.currentData() == "digits-cnn"


def test_offline_download_says_so(qtbot, window, tmp_path, monkeypatch):
    from advstudio.core.models import download

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(window.models, "ask_download", lambda key, desc: True)
    monkeypatch.setattr(
        download,
        "weights_download_config",
        lambda key: download.DownloadConfig(
            "http://127.0.0.1:9/w.pth", str(tmp_path / "hub" / "w.pth"), timeout_s=5
        ),
    )
    with qtbot.waitSignal(window.models.failed, timeout=15_000) as blocker:
        window.image_tab.select_model("torchvision:resnet18")
    assert "Are you online" in str(blocker.args[1])
    qtbot.waitUntil(
        lambda: any(
            c.metaObject().className() == "QMessageBox" and "Are you online" in c.text()
            for c in window.image_tab.children()
        )
    )
    assert window.state.model_key == "digits-cnn"


def test_the_window_fits_1280x720_and_never_grows_by_itself(qtbot, window, digit_png, job_ended):
    from advstudio.core.images import load_image

    window.resize(1280, 720)
    window.tabs.setCurrentWidget(window.attack_host)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720), timeout=5000)
    needed = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert needed.width() <= 1280 and needed.height() <= 720
    window.state.set_image(load_image(digit_png))
    with job_ended(window.jobs, timeout=60_000, title="FGSM attack"):
        window.attack_tab.run_attack()
    qtbot.waitUntil(lambda: window.attack_tab.export_button.isEnabled(), timeout=5000)
    for tab in range(window.tabs.count()):  # every tab's content, shown
        window.tabs.setCurrentIndex(tab)
        qtbot.wait(10)
        assert window.size().toTuple() == (1280, 720), window.tabs.tabText(tab)


def test_the_status_line_follows_jobs_and_startup_cannot_pause(qtbot, settings, job_ended):
    from advstudio.ui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(
        lambda: w.job_indicator.worker is not None or w.state.torch_loaded, timeout=60_000
    )
    if w.job_indicator.worker is not None and w.job_indicator.worker.title == "Loading PyTorch":
        assert not w.job_indicator.pause_button.isVisible()  # an import cannot pause
    qtbot.waitUntil(lambda: w.evaluate_action.isEnabled(), timeout=60_000)
    qtbot.waitUntil(lambda: _no_job_running(w), timeout=30_000)
    w.status_message.setText("Could not open the image: not an image.")  # an old error
    with job_ended(w.jobs, timeout=60_000, title="Evaluating") as ended:
        w.evaluate_current_model(batch_size=1)
        assert w.status_message.text() == "Evaluating digits-cnn…"  # not the old error
        assert w.job_indicator.pause_button.isVisibleTo(w.job_indicator)
        ended.worker.cancel()
    assert w.status_message.text() == "Evaluation cancelled."
    w.jobs.shutdown()
