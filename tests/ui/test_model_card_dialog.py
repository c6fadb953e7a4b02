"""A card-less model file opens the card dialog, pre-filled from the probe; the card is kept."""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.models.card import ModelCard, read_card
from advstudio.core.models.probe import ProbeResult
from advstudio.ui.widgets.model_card_dialog import ModelCardDialog


def _pt2(path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 32, 32),)), path)


def test_opening_a_card_less_file_asks_for_its_card_and_keeps_it(qtbot, lab, tmp_path, monkeypatch):
    _pt2(tmp_path / "m.pt2")
    asked = []

    def ask(cls, parent, path, missing, probe=None):
        asked.append((path, missing, probe.input_shape, probe.num_classes))
        return ModelCard((3, 32, 32), "cifar10")

    monkeypatch.setattr(ModelCardDialog, "ask", classmethod(ask))
    key = f"file:{tmp_path / 'm.pt2'}"
    with qtbot.waitSignal(lab.models.loaded, timeout=60_000):
        lab.models.request(key)
    assert asked == [(tmp_path / "m.toml", ("input_shape", "classes"), (3, 32, 32), 10)]
    assert read_card(tmp_path / "m.pt2") == ModelCard((3, 32, 32), "cifar10")
    assert lab.state.model.input_shape == (3, 32, 32)
    assert lab.state.model.class_names[0] == "airplane"


def test_cancelling_the_card_dialog_fails_the_load(qtbot, lab, tmp_path, monkeypatch):
    _pt2(tmp_path / "m.pt2")
    monkeypatch.setattr(ModelCardDialog, "ask", classmethod(lambda cls, *a, **k: None))
    with qtbot.waitSignal(lab.models.failed, timeout=60_000) as blocker:
        lab.models.request(f"file:{tmp_path / 'm.pt2'}")
    assert "no model card" in str(blocker.args[1])
    assert read_card(tmp_path / "m.pt2") is None


def test_the_dialog_is_pre_filled_from_the_probe_and_normalises_nothing_unasked(qtbot, tmp_path):
    probe = ProbeResult((1, 28, 28), 10, ((1, 28, 28),), ())
    dialog = ModelCardDialog(tmp_path / "m.ts", ("input_shape", "classes"), probe)
    qtbot.addWidget(dialog)
    assert dialog.build() == ModelCard((1, 28, 28), "digits")
    dialog.classes.setCurrentText("cat, dog")
    dialog.mean.setText("0.5")
    dialog.std.setText("0.25")
    assert dialog.build() == ModelCard((1, 28, 28), ("cat", "dog"), (0.5,), (0.25,))
    dialog.std.setText("")
    dialog._accept()
    assert dialog.card is None and "mean and std" in dialog.error.text()
