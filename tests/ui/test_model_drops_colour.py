"""A colour network written in every format the registry reads, dropped on the real window: each
becomes the current model with the same logits (to 1e-5) as the network itself and the same FGSM
images as the same file loaded through the registry.

The weights-only formats load in-process (a few seconds); a code-bearing one (``.pt2``, ONNX,
TorchScript) is first tried in a child process that imports PyTorch (about 10 s each on a loaded
machine), so those drops, and the torchvision resnet18's, are in the slow tests."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.whitebox import fgsm
from advstudio.core.models import builders
from advstudio.core.models.card import ModelCard, write_card
from advstudio.core.models.registry import load_model
from tests.core.test_model_formats import EPS, TOL, WRITERS, TinyColour, tiny_colour

from .conftest import drop_files

WEIGHTS_ONLY = ("safetensors", "zip", "legacy")
CODE_BEARING = ("pt2", "pt2-dynamic", "onnx", "torchscript")


def _drop_each(qtbot, window, net, arch, formats, tmp_path, x):
    """Write ``net`` in each of ``formats`` (each in its own folder, beside its card), drop it on
    the window, and check the loaded model against the net and against the registry's load."""
    with torch.no_grad():
        reference = net(x)
    y = torch.arange(len(x)) % 10
    first_adv = None
    for name in formats:
        write, filename, _fmt, weights_only = WRITERS[name]
        folder = tmp_path / name
        folder.mkdir()
        path = folder / filename
        write(net, path, x)
        card = ModelCard((3, 32, 32), "cifar10", architecture=arch if weights_only else None)
        write_card(card, path)
        key = f"file:{path}"
        with qtbot.waitSignal(window.models.loaded, timeout=180_000) as loaded:
            assert drop_files(window, path)
        assert loaded.args == [key] and window.state.model_key == key
        model = window.state.model
        assert model.input_shape == (3, 32, 32) and model.class_names[0] == "airplane"
        assert window.image_tab.model_combo.currentData() == key
        with torch.no_grad():
            delta = (model(x) - reference).abs().max().item()
        print(f"{arch} {name} dropped: max |Δlogit| = {delta:.2e}")
        assert delta <= TOL, name
        x_adv = fgsm(model, x, y, EPS)
        torch.testing.assert_close(x_adv, fgsm(load_model(key), x, y, EPS), atol=0, rtol=0)
        if first_adv is None:
            first_adv = x_adv
        else:  # every format: the same FGSM images
            torch.testing.assert_close(x_adv, first_adv, atol=0, rtol=0, msg=name)
        qtbot.waitUntil(lambda: not window.jobs.active, timeout=60_000)  # gradient checks


def test_a_colour_net_dropped_as_weights_gives_the_same_logits_and_fgsm(
    qtbot, window, tmp_path, monkeypatch
):
    monkeypatch.setitem(builders.CIFAR_ARCHITECTURES, "tiny-colour", TinyColour)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _drop_each(qtbot, window, tiny_colour(), "tiny-colour", WEIGHTS_ONLY, tmp_path, x)
    assert "3×32×32 RGB, 10 classes" in window.attack_tab.header.full_text


@pytest.mark.slow
def test_a_colour_net_dropped_as_code_gives_the_same_logits_and_fgsm(qtbot, window, tmp_path):
    """Each drop is tried in a child process first (no architecture needed: the file holds
    the graph)."""
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _drop_each(qtbot, window, tiny_colour(), "tiny-colour", CODE_BEARING, tmp_path, x)


@pytest.mark.slow
def test_a_torchvision_resnet18_dropped_in_every_format(qtbot, window, tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    _drop_each(qtbot, window, net, "resnet18", tuple(WRITERS), tmp_path, x)
