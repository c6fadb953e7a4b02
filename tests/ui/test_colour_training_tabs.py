"""The Defence and Poisoning tabs on a colour folder (issue #17): the network lists offer what
fits the set, choosing one fills in its settings, the trained model keeps its colour shape on its
card (so "Attack this model" opens it at 3×32×32), and the backdoor is stamped in colour."""

from __future__ import annotations

import pytest

from tests.core.colour_data import CLASSES, colour_folder


@pytest.fixture
def defence(build_tab):
    tab = build_tab("defence")
    tab.robust_check.setChecked(False)  # the quick baseline runs on the digits only
    return tab


def _archs(tab):
    return [tab.arch.itemData(i) for i in range(tab.arch.count())]


def _pick(tab, arch):
    """Choose ``arch`` as a user does (``activated`` fills in its settings)."""
    index = tab.arch.findData(arch)
    tab.arch.setCurrentIndex(index)
    tab.arch.activated.emit(index)


def test_a_colour_folder_trains_a_colour_network_with_its_card(qtbot, defence, tmp_path):
    from advstudio.core.models.card import read_card
    from advstudio.core.models.registry import load_model

    assert _archs(defence) == ["digits-cnn", "digits-mlp", "small-cnn"]  # the digits
    folder = colour_folder(tmp_path / "shapes", per_class=10, junk=False)
    defence.recipe.setCurrentIndex(defence.recipe.findData("pgd"))
    defence.use_folder(str(folder))
    archs = _archs(defence)
    assert "digits-cnn" not in archs and "digits-mlp" not in archs  # 3×32×32 is not for them
    assert archs[:3] == ["small-cnn", "preact-resnet18", "cifar-resnet18"]
    assert "wrn-28-10" in archs and "resnet18" in archs
    assert defence.arch.currentData() == "small-cnn"
    assert (defence.eps.value(), defence.batch.value()) == (round(8 / 255, 4), 128)
    assert defence.optimizer.currentData() == "adam"
    # a CIFAR ResNet gets Rice et al.'s recipe, filled in
    _pick(defence, "preact-resnet18")
    assert defence.optimizer.currentData() == "sgd"
    assert defence.schedule.currentData() == "piecewise"
    assert (defence.lr.value(), defence.weight_decay.value()) == (0.1, 5e-4)
    assert (defence.epochs.value(), defence.pgd_steps.value()) == (200, 10)
    assert defence.rows["optimizer"].isVisibleTo(defence)
    # back to the CPU-sized net, for a short run
    _pick(defence, "small-cnn")
    assert defence.optimizer.currentData() == "adam" and defence.lr.value() == 1e-3
    defence.epochs.setValue(2)
    defence.batch.setValue(20)
    defence.pgd_steps.setValue(1)
    kind, config = defence.config()
    assert (kind, config.arch, config.eps) == ("train", "small-cnn", 8 / 255)  # exactly 8/255
    with qtbot.waitSignal(defence.run_done, timeout=180_000) as blocker:
        defence.start()
    result = blocker.args[0]
    assert result.input_shape == (3, 32, 32) and result.class_names == sorted(CLASSES)
    assert defence.table.rowCount() == 1 and "%" in defence.table.item(0, 2).text()
    card = read_card(result.save_path)
    assert card.input_shape == (3, 32, 32) and card.architecture == "small-cnn"
    assert list(card.classes) == sorted(CLASSES)
    defence.table.selectRow(0)
    assert defence.attack_button.isEnabled()
    key = defence.attack_selected()
    assert key == f"file:{result.save_path}"
    model = load_model(key)  # what the Attack tab opens
    assert model.input_shape == (3, 32, 32) and model.class_names == sorted(CLASSES)


def test_the_poisoning_tab_poisons_a_colour_set(qtbot, build_tab, tmp_path):
    poison = build_tab("poisoning")
    folder = colour_folder(tmp_path / "shapes", per_class=10, junk=False)
    poison.data.use_folder(str(folder))
    archs = _archs(poison)
    assert archs[:2] == ["small-cnn", "preact-resnet18"] and "digits-cnn" not in archs
    assert (poison.row.maximum(), poison.size.maximum(), poison.target.count()) == (31, 32, 10)
    poison.attack.setCurrentIndex(poison.attack.findData("backdoor"))
    poison.size.setValue(4)
    poison.row.setValue(28)
    poison.col.setValue(28)
    px = poison.preview.pixels  # the trigger on an image of the victim's shape
    assert px.shape == (32, 32, 3) and (px[28:, 28:] == 1.0).all() and (px[:28] == 0.5).all()
    poison.epochs.setValue(1)
    poison.fraction.setValue(10.0)
    config = poison.config()
    assert (config.arch, config.dataset) == ("small-cnn", f"folder:{folder}")
    with qtbot.waitSignal(poison.run_done, timeout=300_000) as blocker:
        poison.start()
    result = blocker.args[0]
    assert result.n_poisoned == round(0.1 * 80) and result.train.input_shape == (3, 32, 32)
    assert result.gallery.shape[1:] == (32, 32, 3)
    assert (result.gallery[:, 28:, 28:, :] == 1.0).all()  # white in every channel
    assert poison.gallery.pixels is not None
