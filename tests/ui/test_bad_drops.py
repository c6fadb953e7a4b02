"""The bad-input corpus (tests/corpus/make_corpus.py) dropped on the real window, and a model
whose scores are NaN: each gets a clear message, the previous image and prediction are kept,
and no widget ever shows half a result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.errors import ImageLoadError
from advstudio.core.images import load_image
from tests.corpus.make_corpus import make_images

from .conftest import drop_files


def _top(window):
    p = window.image_tab.last_prediction
    return None if p is None else p.names[0]


def _core_message(path) -> str:
    """What the core loader says of ``path``: the window must say the same."""
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    return str(caught.value)


def test_every_bad_drop_explains_and_keeps_the_previous_image(qtbot, window, digit_png, tmp_path):
    corpus = make_images(tmp_path / "corpus")
    assert drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _top(window) == "7", timeout=10_000)
    before, shown = window.state.image, window.image_tab.bars.shown()
    for name, entry in corpus.items():
        if entry.expected is None:
            continue
        expected = _core_message(entry.path)
        with qtbot.waitSignal(window.image_tab.image_error, timeout=10_000) as blocker:
            assert drop_files(window, entry.path), name
        assert blocker.args[0] == expected, name
        banner = window.image_tab.banner.text()
        assert window.image_tab.banner.isVisible() and ".." not in banner, banner
        assert banner.endswith("The previous image is kept.")
        assert window.status_message.text() == expected
        assert window.state.image is before, name
        assert window.image_tab.bars.shown() == shown and _top(window) == "7"


def test_a_good_drop_after_a_bad_one_clears_the_error_and_turns_the_photo_upright(
    qtbot, window, tmp_path
):
    corpus = make_images(tmp_path / "corpus")
    with qtbot.waitSignal(window.image_tab.image_error, timeout=10_000):
        drop_files(window, corpus["bomb.png"].path)
    banner = window.image_tab.banner.text()
    assert banner.endswith("Scale it down first. The previous image is kept.")
    error = window.image_tab.last_image_error
    assert window.status_message.text() == error
    with qtbot.waitSignal(window.state.image_changed, timeout=10_000):
        drop_files(window, corpus["rotated.jpg"].path)
    assert window.state.image.pixels.shape == (40, 20, 3)  # upright by its EXIF orientation
    assert not window.image_tab.banner.isVisible()
    assert window.status_message.text() != error  # the old error is gone from the status bar
    with qtbot.waitSignal(window.state.image_changed, timeout=10_000):
        drop_files(window, corpus["数字 ✓ é.png"].path)
    assert window.state.image.path.name == "数字 ✓ é.png"
    qtbot.waitUntil(
        lambda: (
            not [
                w
                for w in window.jobs.active  # the photos' predictions
                if w.title.startswith("Predicting")
            ]
        ),
        timeout=30_000,
    )


class _NaNNet(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 10), float("nan"))


def test_a_model_that_outputs_nan_is_refused_naming_model_and_image(qtbot, window, digit_png):
    from advstudio.core.models.classifier import Classifier

    assert drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _top(window) == "7", timeout=10_000)
    tab, image = window.image_tab, window.state.image
    broken = Classifier(_NaNNet(), (1, 28, 28), [str(i) for i in range(10)], name="Broken net")
    window.state.set_model("broken", broken)
    qtbot.waitUntil(lambda: tab.verdict.text() == "Prediction failed", timeout=10_000)
    boxes = [w for w in tab.children() if w.metaObject().className() == "QMessageBox"]
    assert boxes and "Broken net" in boxes[-1].text() and "seven.png" in boxes[-1].text()
    assert "NaN or infinite" in boxes[-1].text()
    assert tab.bars.shown() == []  # cleared, never half the old model's bars
    assert window.state.image is image  # the image is kept


def test_topk_bars_refuse_nan_and_keep_what_they_show(qtbot):
    from advstudio.ui.widgets.topk_bars import TopKBars

    bars = TopKBars(3)
    qtbot.addWidget(bars)
    bars.set_prediction(["a", "b"], [0.75, 0.25])
    for bad in ([float("nan"), 0.1], [float("inf"), 0.0], [1.5, 0.0]):
        with pytest.raises(ValueError, match="finite numbers in \\[0, 1\\]"):
            bars.set_prediction(["a", "b"], bad)
        assert bars.shown() == [("a", 0.75), ("b", 0.25)]


def test_a_newer_drop_supersedes_one_still_decoding(qtbot, window, digit_png, tmp_path):
    corpus = make_images(tmp_path / "corpus")
    errors = []
    window.image_tab.image_error.connect(errors.append)
    with qtbot.waitSignal(window.state.image_changed, timeout=10_000):
        drop_files(window, corpus["truncated.png"].path)  # both start before either returns
        drop_files(window, digit_png)
    qtbot.waitUntil(lambda: _top(window) == "7", timeout=10_000)
    assert window.state.image.path == digit_png
    assert errors == [] and not window.image_tab.banner.isVisible()  # the stale failure is dropped
