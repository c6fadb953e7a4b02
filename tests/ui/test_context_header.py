"""The header over the Attack and Certify tabs names the current model (its shape, classes and the
pixel scale ε refers to, from the model itself) and the current image, and follows both."""

from __future__ import annotations

import numpy as np
import torch

from advstudio.core.images import LoadedImage
from advstudio.core.models.classifier import Classifier
from advstudio.ui.widgets.context_header import model_text
from tests.core.colour_data import CLASSES, ColourNet


def _image(h: int, w: int, c: int, name: str = "photo.png") -> LoadedImage:
    from pathlib import Path

    return LoadedImage(np.zeros((h, w, c), np.float32), Path(name), "RGB", (w, h))


def test_the_attack_tabs_header_follows_the_model_and_the_image(qtbot, build_tab, lab):
    tab = build_tab("attack")
    assert tab.header.full_text.startswith("Model: none yet")

    lab.use_model("digits-cnn")
    text = tab.header.full_text
    assert "(digits-cnn)" in text and "1×28×28 grey, 10 classes" in text
    # the built-in normalises inside the wrapper: ε still refers to [0, 1] pixels, and says so
    mean, std = (
        float(v) for v in (lab.state.model.mean.flatten()[0], lab.state.model.std.flatten()[0])
    )
    assert f"mean {mean:.4g} / std {std:.4g}" in text and "ε in [0, 1] pixel units" in text
    assert "Image: none" in text

    torch.manual_seed(0)
    colour = Classifier(ColourNet().eval(), (3, 32, 32), CLASSES, name="shapes net")
    lab.state.set_model("memory:shapes net", colour)
    lab.state.set_image(_image(48, 64, 3, "cat.png"))
    text = tab.header.full_text
    assert "3×32×32 RGB, 10 classes" in text and "takes [0, 1] pixels as they are" in text
    assert text.endswith("Image: cat.png, 64×48 RGB")
    assert "1×28×28" not in text  # nothing left of the previous model
    qtbot.waitUntil(lambda: not lab.jobs.active, timeout=30_000)  # the tab's gradient checks


def test_the_certify_tab_has_the_same_header(qtbot, lab, settings):
    from advstudio.ui.certify.tab import CertifyTab

    tab = CertifyTab(lab.state, lab.jobs, lab.models, settings)
    qtbot.addWidget(tab)
    lab.use_model("digits-mlp")
    assert "(digits-mlp)" in tab.header.full_text


def test_a_model_on_a_byte_scale_names_it():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    clf = Classifier(net, (3, 2, 2), ["a", "b", "c"], value_range=(0.0, 255.0))
    line, tooltip = model_text(clf, "file:/m/net.pt2")
    assert "mapped to [0, 255]" in line and "normalised" not in line
    assert line == tooltip  # no card: the tooltip is the line


def test_a_well_known_normalisation_is_named():
    """What the UI says of a CIFAR-10 model whose card normalises with CIFAR-10's statistics."""
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.manual_seed(0)
    clf = Classifier(ColourNet().eval(), (3, 32, 32), CLASSES, mean=mean, std=std)
    line, _ = model_text(clf, "file:/m/cifar.pt2")
    assert "3×32×32 RGB, 10 classes" in line
    assert "normalised with CIFAR-10 mean/std (mean 0.4914, 0.4822, 0.4465 / std 0.247," in line
    odd = Classifier(ColourNet().eval(), (3, 32, 32), CLASSES, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert "normalised with mean 0.5, 0.5, 0.5 / std 0.5, 0.5, 0.5 inside" in model_text(odd)[0]
