"""The bad-input corpus (tests/corpus/make_corpus.py) through the core image loader and
advstudio-run: each input gets its own error kind and one clear line, never a traceback, a hang
or a silent acceptance, and what was there before is kept."""

from __future__ import annotations

import pytest

import advstudio.core.errors as errors
from advstudio.cli import EXIT_USAGE, main
from advstudio.core.images import load_image
from tests.corpus.make_corpus import CONFIGS, make_configs, make_images


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))


def test_every_bad_image_gets_its_own_kind_and_names_the_file(images):
    for name, entry in images.items():
        if entry.expected is None:
            continue
        with pytest.raises(errors.ImageLoadError) as caught:
            load_image(entry.path)
        assert type(caught.value).__name__ == entry.expected, name
        assert entry.path.name in str(caught.value), name


def test_huge_images_are_refused_by_their_header_before_decoding(images, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("decoded a huge image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for name in ("huge.png", "huge_rgba.png", "bomb.png"):
        with pytest.raises(errors.ImageTooLargeError):
            load_image(images[name].path)


def test_the_memory_estimate_counts_channels(images):
    with pytest.raises(errors.ImageTooLargeError, match="MiB once decoded"):
        load_image(images["huge_rgba.png"].path)


def test_exif_rotated_photo_is_upright_and_unicode_paths_load(images):
    rotated = load_image(images["rotated.jpg"].path)
    assert (rotated.width, rotated.height) == (20, 40)  # stored 40 wide; EXIF says turn it
    assert rotated.file_size == (40, 20)
    assert load_image(images["数字 ✓ é.png"].path).pixels.shape == (28, 28, 1)


def test_non_finite_float_tiff_is_refused_not_clipped(images):
    with pytest.raises(errors.NonFiniteImageError, match="NaN or infinite"):
        load_image(images["nan.tif"].path)


CONFIG_NAMES = [*CONFIGS, "a folder", "a FIFO", "missing"]


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    return make_configs(tmp_path_factory.mktemp("configs"))


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_bad_config_exits_2_with_one_line(configs, capsys, name, tmp_path):
    if name not in configs:
        pytest.skip("no FIFOs on this system")
    from advstudio.core.runs import RunStore

    store = RunStore.open(tmp_path / "store")
    code = main([str(configs[name]), "--quiet", "--store", str(tmp_path / "store")])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == EXIT_USAGE, (name, captured.err)
    assert len(lines) == 1 and lines[0].startswith("advstudio-run: bad config: "), lines
    assert "Traceback" not in captured.err and captured.out == ""
    assert store.list_runs() == []  # nothing recorded for a config that cannot run


def test_a_string_where_a_list_is_meant_says_so(configs, capsys):
    assert main([str(configs["attacks as a string"]), "--quiet", "--no-record"]) == EXIT_USAGE
    assert "attacks must be a list, not 'fgsm' (write ['fgsm'] for one)" in capsys.readouterr().err


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_model_with_non_finite_scores_is_refused_where_predictions_are_made(value):
    import torch
    from torch import nn

    from advstudio.core.models.classifier import Classifier

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    clf = Classifier(net, (1, 2, 2), ["a", "b", "c"], name="Tiny net")
    x = torch.rand(1, 1, 2, 2)
    assert clf.predict(x, k=2)[0].names  # finite: a prediction
    with torch.no_grad():
        net[1].bias.fill_(value)
    clf.train()
    with pytest.raises(errors.NonFiniteOutputError) as caught:
        clf.predict(x, k=2, source="cat.tif")
    assert str(caught.value).startswith("Tiny net gave scores that are NaN or infinite for cat.tif")
    assert clf.training  # the mode it had is restored
