"""The shared data-set choice: folders (ImageFolder, labels.csv, train/test), torchvision sets
(monkeypatched, never downloaded), the digits, skipping, limits, and fitting to a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advstudio.core.data.fit import fit_to_model
from advstudio.core.data.sets import DatasetSpec, check_dataset, describe_shape, load_dataset
from advstudio.core.errors import ConfigError, DownloadError
from tests.core.colour_data import CLASSES, colour_folder, shape_image


def test_a_colour_image_folder_loads_at_native_shape_and_reports_skips(tmp_path):
    root = colour_folder(tmp_path / "shapes", per_class=5)
    data = load_dataset(f"folder:{root}", "all")
    assert data.class_names == sorted(CLASSES) and data.shape == (3, 32, 32)
    assert len(data.x) == 50 and data.x.dtype == torch.float32
    assert 0 <= float(data.x.min()) and float(data.x.max()) <= 1
    assert torch.bincount(data.y).tolist() == [5] * 10
    assert sorted(data.skipped) == [("broken.png", "not an image"), ("notes.txt", "not an image")]
    assert data.description == "32×32 RGB, 10 classes, 50 images"
    assert (
        "2 unreadable file(s) skipped: " in data.skipped_line()
        and "notes.txt" in data.skipped_line()
    )
    # pixels are the files' own: the first image of the first class, byte for byte
    first = np.asarray(Image.open(root / sorted(CLASSES)[0] / "0.png"))
    assert torch.equal(data.x[0], torch.from_numpy(first.copy()).permute(2, 0, 1).float() / 255)


def test_train_and_test_of_one_folder_are_disjoint_and_stratified(tmp_path):
    root = colour_folder(tmp_path / "s", per_class=5, junk=False)
    train, test = load_dataset(f"folder:{root}", "train"), load_dataset(f"folder:{root}", "test")
    assert torch.bincount(test.y).tolist() == [1] * 10 and len(train.x) == 40
    flat = lambda d: {tuple(r.flatten()[:64].tolist()) for r in d.x}  # noqa: E731
    assert not flat(train) & flat(test)
    # the split does not depend on the job's seed; the limit draws with it
    assert torch.equal(load_dataset(f"folder:{root}", "test", seed=7).x, test.x)
    few = load_dataset(f"folder:{root}", "all", limit=4, seed=3)
    idx = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:4]
    assert torch.equal(few.x, load_dataset(f"folder:{root}", "all").x[idx])


def test_train_and_test_sub_folders_are_used_as_they_are(tmp_path):
    colour_folder(tmp_path / "train", per_class=2, junk=False)
    colour_folder(tmp_path / "test", per_class=1, seed=1, junk=False)
    assert len(load_dataset(f"folder:{tmp_path}", "train").x) == 20
    assert len(load_dataset(f"folder:{tmp_path}", "test").x) == 10
    assert len(load_dataset(f"folder:{tmp_path}", "all").x) == 30


def test_a_flat_folder_with_labels_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["file,label"]
    for i, label in enumerate([3, 10, 3, 2]):
        Image.fromarray(shape_image(label % 10, rng, 16)).save(tmp_path / f"im{i}.png")
        rows.append(f"im{i}.png,{label}")
    rows.append("gone.png,2")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(f"folder:{tmp_path}", "all")
    assert data.class_names == ["2", "3", "10"]  # numeric order, not "10" < "2"
    assert data.y.tolist() == [1, 2, 1, 0] and data.shape == (3, 16, 16)
    assert data.skipped == [("gone.png", "missing")]


def test_mixed_sizes_and_modes_become_one_batch_and_say_so(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((20, 20), 100, np.uint8)).save(tmp_path / c / f"{i}.png")
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(tmp_path / "a" / "rgb.png")
    data = load_dataset(f"folder:{tmp_path}", "all")
    assert data.shape == (3, 20, 20)  # colour wins, the common size wins
    assert "1 of other sizes resized to 20×20" in data.description


def test_missing_and_empty_folders_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="data folder not found"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("no")
    with pytest.raises(ConfigError, match="holds no readable images.*1 unreadable"):
        load_dataset(f"folder:{tmp_path}", "all")


def test_digits_are_the_bundled_set_and_their_draw_matches_the_sweep():
    from advstudio.core.data import load_digits

    x, y = load_digits("test")
    data = load_dataset("digits", "test", limit=100, seed=5)
    idx = torch.randperm(1000, generator=torch.Generator().manual_seed(5))[:100]
    assert torch.equal(data.x, x[idx]) and torch.equal(data.y, y[idx])
    assert data.description == "28×28 grey, 10 classes, 100 images"
    assert len(load_dataset("digits", "all").x) == 5000


class _Cifar:
    """Stands in for torchvision's CIFAR10 / CIFAR100 (no download in tests)."""

    def __init__(self, root, train=True, download=False):
        rng = np.random.default_rng(int(train))
        self.data = rng.integers(0, 255, (12 if train else 6, 32, 32, 3), dtype=np.uint8)
        self.targets = list(rng.integers(0, 10, len(self.data)))
        self.classes = [f"c{i}" for i in range(10)]


class _Svhn:
    def __init__(self, root, split="train", download=False):
        self.data = np.zeros((4, 3, 32, 32), np.uint8)
        self.data[:, 2] = 255
        self.labels = np.array([0, 1, 2, 3])


class _Offline:
    def __init__(self, *a, **k):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")


def test_torchvision_sets_come_at_native_shape(monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "CIFAR10", _Cifar)
    monkeypatch.setattr(tvd, "SVHN", _Svhn)
    data = load_dataset("torchvision:cifar10", "train")
    raw = _Cifar(None, True)
    assert data.shape == (3, 32, 32) and data.class_names[0] == "c0"
    assert torch.equal(data.x[1, :, 4, 7] * 255, torch.tensor(raw.data[1, 4, 7]).float())
    assert len(load_dataset("torchvision:cifar10", "all").x) == 18
    svhn = load_dataset("torchvision:svhn", "test")
    assert svhn.shape == (3, 32, 32) and float(svhn.x[:, 2].min()) == 1.0
    assert svhn.y.tolist() == [0, 1, 2, 3] and len(svhn.class_names) == 10


def test_torchvision_offline_names_the_folder(monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path))
    monkeypatch.setattr(tvd, "CIFAR100", _Offline)
    with pytest.raises(DownloadError, match=f"online once; or put its files in {tmp_path}"):
        load_dataset("torchvision:cifar100")


def test_imagenet_folder_takes_the_zoo_crop_and_a_synset_mapping(tmp_path):
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / wnid).mkdir()
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
            tmp_path / wnid / "a.JPEG"
        )
    with pytest.raises(ConfigError, match="LOC_synset_mapping.txt"):
        load_dataset(f"imagenet-folder:{tmp_path}")
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n"
    )
    data = load_dataset(f"imagenet-folder:{tmp_path}", "all")
    assert data.shape == (3, 224, 224) and data.class_names == [
        "tench",
        "goldfish",
        "great white shark",
    ]
    assert data.y.tolist() == [0, 1]


@pytest.mark.parametrize("bad", ["cifar", "folder:", "torchvision:imagenet", 3, "Digits"])
def test_the_dataset_check_refuses_in_the_dialect(bad):
    with pytest.raises(ConfigError, match="dataset must be one of digits, folder:<path>"):
        check_dataset(bad)


def test_spec_round_trips():
    assert str(DatasetSpec.parse("folder:/a/b:c")) == "folder:/a/b:c"
    assert DatasetSpec.parse("torchvision:svhn") == DatasetSpec("torchvision", "svhn")
    assert describe_shape((1, 28, 28)) == "28×28 grey"


def test_fit_to_model_does_only_what_it_is_asked():
    x = torch.rand(2, 3, 64, 48)
    with pytest.raises(ConfigError, match="images are 64×48 RGB but the model takes 32×32 RGB"):
        fit_to_model(x, (3, 32, 32), "none")
    same, note = fit_to_model(x, (3, 64, 48), "none")
    assert same is x and note == ""
    out, note = fit_to_model(x, (3, 32, 32), "resize")
    assert out.shape == (2, 3, 32, 32) and note == "resized 64×48 → 32×32"
    out, note = fit_to_model(x, (1, 32, 32), "center-crop")
    assert note == (
        "converted RGB → grey (ITU-R 601 luma); centre-cropped 64×48 → 48×48; resized 48×48 → 32×32"
    )
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    expect = torch.nn.functional.interpolate(
        luma[:, None, 8:56], size=(32, 32), mode="bilinear", antialias=True
    )
    assert torch.allclose(out, expect.clamp(0, 1), atol=1e-6)
    grey, note = fit_to_model(torch.rand(1, 1, 8, 8), (3, 8, 8), "resize")
    assert note == "converted grey → RGB (repeated)" and torch.equal(grey[0, 0], grey[0, 2])


# ----------------------------------------------------------------------------- downloads


def test_torchvision_files_are_where_torchvision_looks_first(monkeypatch, tmp_path):
    from advstudio.core.data.sets import torchvision_files

    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path))
    root = tmp_path / "datasets"
    ((url, path),) = torchvision_files("cifar10")
    assert url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert path == root / "cifar-10-python.tar.gz"
    mnist = torchvision_files("mnist")
    assert len(mnist) == 4 and mnist[0][1] == root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert mnist[0][0].endswith("/train-images-idx3-ubyte.gz")
    assert torchvision_files("fashion-mnist")[0][1].parent == root / "FashionMNIST" / "raw"
    assert [p.name for _, p in torchvision_files("svhn")] == ["train_32x32.mat", "test_32x32.mat"]


@pytest.fixture
def served(monkeypatch, tmp_path):
    """CIFAR-100's archive served from a local file (no network), in 1,000-byte chunks."""
    from advstudio.core.data import sets
    from advstudio.core.models import download as dl

    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(dl, "CHUNK", 1000)
    source = tmp_path / "served.tar.gz"
    source.write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    dest = tmp_path / "home" / "datasets" / "cifar-100-python.tar.gz"
    monkeypatch.setattr(sets, "torchvision_files", lambda name: [(source.as_uri(), dest)])
    return source, dest


def test_a_torchvision_set_is_fetched_once_with_progress_in_bytes(served):
    from advstudio.core.jobs import Log, Progress, drive
    from advstudio.core.models.download import fetch_data

    source, dest = served
    out = drive(fetch_data("torchvision:cifar100"), keep_events=True)
    assert dest.read_bytes() == source.read_bytes()
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert len(progress) >= 10 and progress[-1].done == progress[-1].total == 10_240
    assert progress[-1].message == "downloading cifar-100-python.tar.gz"
    assert any(isinstance(e, Log) and "once" in e.text for e in out.events)
    assert drive(fetch_data("torchvision:cifar100"), keep_events=True).events == []  # cached
    assert drive(fetch_data("digits"), keep_events=True).events == []


def test_cancelling_a_data_set_download_leaves_no_partial_file(served):
    from advstudio.core.jobs import Progress
    from advstudio.core.models.download import fetch_data

    _, dest = served
    job = fetch_data("torchvision:cifar100")
    seen = 0
    for event in job:
        seen += isinstance(event, Progress) and event.done > 0
        if seen == 3:
            break
    job.close()  # what Cancel in the status bar does to a job
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_a_data_set_download_offline_names_the_folder(served, monkeypatch, tmp_path):
    import urllib.error

    from advstudio.core.data.sets import torchvision_root
    from advstudio.core.jobs import drive
    from advstudio.core.models import download as dl
    from advstudio.core.models.download import fetch_data

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as info:
        drive(fetch_data("torchvision:cifar100"))
    text = str(info.value)
    assert text.startswith("could not get the cifar100 data set (cifar-100-python.tar.gz): ")
    assert "name resolution" in text and f"or put its files in {torchvision_root()}" in text
    assert torchvision_root() == tmp_path / "home" / "datasets"
