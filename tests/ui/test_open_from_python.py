"""``advstudio.open`` from a script or a notebook: the window on an in-memory colour module with
its card, listed in the model list, predicting an image with it; the Qt application that runs
(here pytest-qt's) is reused and the call returns at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt

import advstudio
from advstudio.core.models import memory
from tests.core.colour_data import CLASSES, ColourNet, colour_folder, shape_image


@pytest.fixture
def colour_module():
    torch.manual_seed(0)
    net = ColourNet().eval()
    yield net
    for key in list(memory.registered()):
        memory.unregister(key)


def test_open_shows_an_in_memory_model_and_predicts_an_image_with_it(
    qtbot, settings, tmp_path, colour_module
):
    png = tmp_path / "red_square.png"
    pixels = shape_image(0, np.random.default_rng(0))
    Image.fromarray(pixels).save(png)
    folder = colour_folder(tmp_path / "shapes", per_class=1, junk=False)
    card = {"input_shape": [3, 32, 32], "classes": CLASSES, "name": "my colour net"}

    window = advstudio.open(
        colour_module, card=card, data=f"folder:{folder}", image=png, settings=settings
    )
    qtbot.addWidget(window)
    assert window.isVisible()  # returned at once: pytest-qt's application is running
    key = "memory:my colour net"
    qtbot.waitUntil(lambda: window.state.model_key == key, timeout=60_000)
    qtbot.waitUntil(lambda: window.image_tab.last_prediction is not None, timeout=20_000)
    qtbot.waitUntil(lambda: window.image_tab.last_prediction.names[0] in CLASSES, timeout=20_000)

    # the model list holds it, with its card's geometry
    combo = window.image_tab.model_combo
    index = combo.findData(key)
    assert index >= 0 and combo.itemText(index) == "my colour net"
    assert combo.currentIndex() == index
    tooltip = combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert tooltip == "in-memory model (3×32×32, 10 classes)"
    model = window.state.model
    assert model.net is colour_module and model.class_names == CLASSES
    assert model.card.name == "my colour net" and model.card.mean is None

    # the prediction is the module's own on the PNG's pixels (no normalisation: no mean/std)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)
    with torch.no_grad():
        probs = torch.softmax(colour_module(x), 1)[0]
    top = window.image_tab.last_prediction
    assert top.names[0] == CLASSES[int(probs.argmax())]
    assert top.probs[0] == pytest.approx(float(probs.max()), abs=1e-5)
    shown = window.image_tab.bars.shown()
    assert shown[0][0] == top.names[0] and shown[0][1] == pytest.approx(top.probs[0], abs=2e-3)

    # the data set is the Attack tab's, for the sweep and robust accuracy
    qtbot.waitUntil(lambda: window.attack_tab is not None, timeout=20_000)
    assert window.attack_tab.sweep.data.dataset() == f"folder:{folder}"
    assert window.attack_tab.robust.data.dataset() == f"folder:{folder}"
    window.jobs.shutdown()


def test_open_without_a_card_fails_in_the_callers_code_naming_the_fields(colour_module):
    from advstudio.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no model card: give its input_shape, classes"):
        advstudio.open(colour_module)


def test_importing_advstudio_loads_neither_qt_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys, advstudio; print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
