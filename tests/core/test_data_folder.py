"""Image folders as training data: mixed sizes and modes converted, unreadable files skipped
and counted, empty folders explained; a GAN trains on one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advstudio.core.data import load_image_folder
from advstudio.core.errors import ConfigError
from advstudio.core.gan import GanConfig
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Log, drive


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 255, (100, 80), dtype=np.uint8)).save(tmp_path / "b.jpg")
    Image.new("P", (32, 32), 3).save(tmp_path / "sub" / "c.gif")
    Image.new("RGBA", (50, 50), (255, 0, 0, 255)).save(tmp_path / "sub" / "d.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize("channels", [1, 3])
def test_mixed_folder_is_converted_and_bad_files_counted(folder, channels):
    out = load_image_folder(folder, 32, channels)
    assert out.x.shape == (4, channels, 32, 32)
    assert 0.0 <= float(out.x.min()) and float(out.x.max()) <= 1.0
    assert [p.name for p, _ in out.skipped] == ["broken.png"]
    red = out.x[[p.name for p in out.files].index("d.png")]
    if channels == 3:
        assert float(red[0].mean()) == pytest.approx(1.0) and float(red[1].mean()) < 0.01


def test_empty_and_missing_folders_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="holds no readable images"):
        load_image_folder(tmp_path, 28, 1)
    with pytest.raises(ConfigError, match="not found"):
        load_image_folder(tmp_path / "nope", 28, 1)


def test_gan_trains_on_a_folder_and_reports_skipped_files(folder):
    cfg = GanConfig(
        dataset=f"folder:{folder}",
        image_size=32,
        channels=3,
        batch_size=2,
        steps=2,
        eval_every=0,
        preview_rate=0,
    )
    out = drive(train_gan(cfg), keep_events=True)
    assert out.result.step == 2 and out.result.samples.ndim == 3
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert any("1 unreadable file(s) skipped" in t and "broken.png" in t for t in logs)


def test_labelled_folder_and_its_stratified_split(tmp_path):
    from advstudio.core.data import load_labelled_folder

    rng = np.random.default_rng(1)
    for name, n in (("cats", 10), ("dogs", 5)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.png"
            )
    data = load_labelled_folder(tmp_path)
    assert data.class_names == ["cats", "dogs"] and data.x.shape == (15, 1, 28, 28)
    assert data.y.tolist() == [0] * 10 + [1] * 5
    (x, y), (xt, yt) = data.split(0.2, seed=0)
    assert sorted(yt.tolist()) == [0, 0, 1] and len(x) == 12
    with pytest.raises(ConfigError, match="at most 1 sub-folders"):
        load_labelled_folder(tmp_path, max_classes=1)
    with pytest.raises(ConfigError, match="one sub-folder per class"):
        load_labelled_folder(tmp_path / "cats")


def test_standard_training_on_a_labelled_folder(tmp_path):
    from advstudio.core.defence.config import TrainConfig
    from advstudio.core.defence.train import train_classifier

    rng = np.random.default_rng(2)
    for name, value in (("dark", 40), ("bright", 215)):
        (tmp_path / name).mkdir()
        for i in range(10):
            noise = rng.integers(-30, 30, (28, 28))
            Image.fromarray(np.clip(value + noise, 0, 255).astype(np.uint8)).save(
                tmp_path / name / f"{i}.png"
            )
    config = TrainConfig(
        arch="digits-mlp", dataset=f"folder:{tmp_path}", epochs=3, batch_size=4, eps=0.05
    )
    result = drive(train_classifier(config)).result
    assert result.metrics["clean_acc"] == 1.0  # 4 held-out images, trivially separable
    with pytest.raises(
        ConfigError, match="dataset must be one of digits, folder:<path>, torchvision:mnist"
    ):
        TrainConfig(dataset="cifar")


class _FakeSet:
    """Stands in for a torchvision data set class (no download in tests)."""

    def __init__(self, root, train=True, download=False):
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 255, (40 if train else 12, 32, 32, 3), dtype=np.uint8)
        self.targets = list(rng.integers(0, 10, len(self.data)))
        self.classes = [f"c{i}" for i in range(10)]


class _FakeGrey:
    """Stands in for FashionMNIST: (N, 28, 28) uint8 tensors."""

    def __init__(self, root, train=True, download=False):
        gen = torch.Generator().manual_seed(int(train))
        self.data = torch.randint(
            0, 255, (40 if train else 12, 28, 28), generator=gen, dtype=torch.uint8
        )
        self.targets = torch.randint(0, 10, (len(self.data),), generator=gen)
        self.classes = [f"c{i}" for i in range(10)]


class _Offline:
    def __init__(self, *a, **k):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz: <urlopen error "
            "[Errno -3] Temporary failure in name resolution>"
        )


def test_torchvision_sets_are_converted(monkeypatch):
    import torchvision.datasets as tvd

    from advstudio.core.data import load_torchvision_set

    monkeypatch.setattr(tvd, "CIFAR10", _FakeSet)
    x, y, classes = load_torchvision_set("cifar10", True, size=28, channels=1)
    assert x.shape == (40, 1, 28, 28) and y.shape == (40,) and classes[0] == "c0"
    x3, _, _ = load_torchvision_set("cifar10", False, size=64, channels=3, limit=5)
    assert x3.shape == (5, 3, 64, 64) and 0 <= float(x3.min()) and float(x3.max()) <= 1


def test_torchvision_sets_offline_say_so(monkeypatch):
    import torchvision.datasets as tvd

    from advstudio.core.data import load_torchvision_set
    from advstudio.core.errors import DownloadError

    monkeypatch.setattr(tvd, "MNIST", _Offline)
    with pytest.raises(DownloadError, match="need to be online once"):
        load_torchvision_set("mnist")
    cfg = GanConfig(dataset="torchvision:mnist", steps=1, eval_every=0)
    with pytest.raises(DownloadError):
        drive(train_gan(cfg))


def test_gan_and_training_on_a_torchvision_set(monkeypatch):
    import torchvision.datasets as tvd

    from advstudio.core.defence.config import TrainConfig
    from advstudio.core.defence.train import train_classifier

    monkeypatch.setattr(tvd, "CIFAR10", _FakeSet)
    out = drive(
        train_gan(
            GanConfig(
                dataset="torchvision:cifar10",
                image_size=32,
                channels=3,
                batch_size=8,
                steps=2,
                eval_every=0,
                preview_rate=0,
            )
        )
    )
    assert out.result.samples.shape[-1] == 3
    # CIFAR-10 stays colour (issue #17): the digit architectures refuse it, they do not
    # train on a grey 28×28 copy
    with pytest.raises(ConfigError, match="digits-mlp takes 1×28×28 grey digits, not 32×32 RGB"):
        drive(
            train_classifier(
                TrainConfig(
                    arch="digits-mlp",
                    dataset="torchvision:cifar10",
                    epochs=1,
                    batch_size=8,
                    eval_images=12,
                )
            )
        )
    monkeypatch.setattr(tvd, "FashionMNIST", _FakeGrey)
    out = drive(
        train_classifier(
            TrainConfig(
                arch="digits-mlp",
                dataset="torchvision:fashion-mnist",
                epochs=1,
                batch_size=8,
                eval_images=12,
            )
        ),
        keep_events=True,
    )
    assert 0.0 <= out.result.metrics["clean_acc"] <= 1.0
    assert "data: torchvision:fashion-mnist (test), 28×28 grey, 10 classes, 12 images" in [
        e.text for e in out.events if isinstance(e, Log)
    ]
