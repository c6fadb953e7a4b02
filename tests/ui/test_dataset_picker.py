"""The shared data-set picker: choices, folders remembered in QSettings, the line it shows."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.dataset_picker import SETTINGS_KEY, DatasetPicker
from tests.core.colour_data import colour_folder


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)


def test_digits_by_default_and_torchvision_sets_listed(qtbot, settings):
    picker = DatasetPicker(settings)
    qtbot.addWidget(picker)
    assert picker.dataset() == "digits" and picker.split() == "test" and picker.fit() == "none"
    assert "28×28 grey, 10 classes" in picker.info.text()
    assert not picker.choose.isVisibleTo(picker)
    with qtbot.waitSignal(picker.changed) as blocker:
        picker.set_dataset("torchvision:svhn")
    assert blocker.args == ["torchvision:svhn"] and "downloaded once into" in picker.info.text()


def test_a_folder_is_described_remembered_and_given_to_configs(qtbot, settings, tmp_path):
    from advstudio.core.attacks.sweep import SweepConfig

    root = colour_folder(tmp_path / "shapes", per_class=2)
    picker = DatasetPicker(settings, fit=True)
    qtbot.addWidget(picker)
    picker.combo.setCurrentIndex(picker.combo.findData("folder"))
    with pytest.raises(ConfigError, match="choose the data folder first"):
        picker.dataset()
    with qtbot.waitSignal(picker.changed) as blocker:
        picker.use_folder(str(root))
    assert blocker.args == [f"folder:{root}"] and picker.split() == "all"
    assert picker.info.text() == (
        "shapes: 32×32 RGB, 10 classes, 22 files (1 not images by name: skipped)"
    )
    assert settings.value(SETTINGS_KEY) == str(root)
    assert picker.choose.isVisibleTo(picker) and picker.fit_combo.isVisibleTo(picker)
    picker.fit_combo.setCurrentIndex(picker.fit_combo.findData("resize"))
    config = SweepConfig(dataset=picker.dataset(), split=picker.split(), fit=picker.fit())
    assert (config.dataset, config.split, config.fit) == (f"folder:{root}", "all", "resize")


def test_a_folder_with_train_and_test_is_evaluated_on_test(qtbot, settings, tmp_path):
    colour_folder(tmp_path / "train", per_class=1, junk=False)
    colour_folder(tmp_path / "test", per_class=1, junk=False)
    picker = DatasetPicker(settings, imagenet=False)
    qtbot.addWidget(picker)
    assert picker.combo.findData("imagenet-folder") == -1
    picker.set_dataset(f"folder:{tmp_path}")
    assert picker.split() == "test" and picker.dataset() == f"folder:{tmp_path}"


def test_a_bad_folder_says_why(qtbot, settings, tmp_path):
    picker = DatasetPicker(settings)
    qtbot.addWidget(picker)
    picker.use_folder(str(tmp_path / "missing"))
    assert "data folder not found" in picker.info.text()


def test_the_sweep_panel_runs_on_a_colour_folder(qtbot, lab, settings, tmp_path, monkeypatch):
    import torch

    from advstudio.core.data.sets import load_dataset
    from advstudio.core.models import registry
    from advstudio.ui.attack.sweep_panel import SweepPanel
    from tests.core.colour_data import colour_classifier

    model = colour_classifier()
    monkeypatch.setattr(registry, "load_model", lambda key, device="cpu", card=None: model)
    lab.state.set_model("test:colour-net", model)
    root = colour_folder(tmp_path / "shapes", per_class=2)
    panel = SweepPanel(lab.state, lab.jobs, settings)
    qtbot.addWidget(panel)
    panel.data.use_folder(str(root))
    panel.n_images.setValue(20)
    panel.epsilons.setText("0")
    with qtbot.waitSignal(panel.sweep_done, timeout=60_000) as blocker:
        panel.start()
    result = blocker.args[0]
    data = load_dataset(f"folder:{root}", "all")
    with torch.no_grad():
        clean = int((model(data.x).argmax(1) == data.y).sum()) / 20
    assert result.config.dataset == f"folder:{root}" and result.n_images == 20
    assert result.curves["fgsm"].accuracy == [clean]
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)


def test_a_torchvision_set_offline_says_so_in_the_panel(qtbot, lab, settings, monkeypatch):
    """No network: the downloader's ``urlopen`` fails as it does offline."""
    import urllib.error

    from advstudio.core.data.sets import torchvision_root
    from advstudio.core.models import download as dl
    from advstudio.core.models import registry
    from advstudio.ui.attack.sweep_panel import SweepPanel
    from tests.core.colour_data import colour_classifier

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    model = colour_classifier()
    monkeypatch.setattr(registry, "load_model", lambda key, device="cpu", card=None: model)
    lab.state.set_model("test:colour-net", model)
    panel = SweepPanel(lab.state, lab.jobs, settings)
    qtbot.addWidget(panel)
    panel.data.set_dataset("torchvision:cifar10")
    assert f"downloaded once into {torchvision_root()}" in panel.data.info.text()
    panel.n_images.setValue(10)
    worker = panel.start()
    qtbot.waitUntil(lambda: worker.is_done, timeout=30_000)
    text = panel.status.text()
    assert text.startswith("could not get the cifar10 data set (cifar-10-python.tar.gz): ")
    assert "name resolution" in text and not list(torchvision_root().glob("cifar*"))
    assert f"online once; or put its files in {torchvision_root()}" in text
    assert not [w for w in panel.children() if w.metaObject().className() == "QMessageBox"]
