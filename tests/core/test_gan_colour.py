"""The GAN on the user's colour data: a folder of coloured shapes (made in the test) read
through the one data module at 32×32 and 64×64 RGB, judged by a classifier whose card matches
the data set, or by none."""

from __future__ import annotations

import math

import pytest
import torch

from advstudio.core.errors import ConfigError, ModelLoadError
from advstudio.core.gan import GanConfig
from advstudio.core.gan.judge import Judge, card_fits, make_judge
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Log, Metrics, drive
from advstudio.core.models.card import ModelCard, write_card
from tests.core.colour_data import CLASSES, ColourNet, colour_classifier, colour_folder

TINY = dict(batch_size=8, width=8, preview_rate=0.0, steps=3)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """10 classes x 8 coloured shapes, 3×32×32 (a fifth of each class is the test split)."""
    return colour_folder(tmp_path_factory.mktemp("shapes"), per_class=8, junk=False)


def _grid_is_colour(grid):
    assert grid.ndim == 3 and grid.shape[-1] == 3
    # the three channels differ: colour samples, not grey repeated (a grey generator's
    # channels would be equal to the bit; after 3 steps the colours are still faint)
    assert float(abs(grid[..., 0] - grid[..., 1]).max()) > 1e-3
    assert float(abs(grid[..., 1] - grid[..., 2]).max()) > 1e-3


@pytest.mark.parametrize("size", [32, 64])
def test_a_colour_folder_trains_at_its_size_without_a_judge(shapes, size):
    cfg = GanConfig(dataset=f"folder:{shapes}", image_size=size, channels=3, eval_every=3, **TINY)
    out = drive(train_gan(cfg), keep_events=True)
    res = out.result
    assert res.step == 3 and res.class_names == sorted(CLASSES)  # folder order
    assert res.samples.shape == (8 * (size + 2) + 2, 8 * (size + 2) + 2, 3)
    _grid_is_colour(res.samples)
    g = res.generator_state
    assert g[next(k for k in g if k.endswith("weight"))].shape[0] == 100  # latent in
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert any("32×32 RGB, 10 classes" in t for t in logs)
    if size == 64:  # resized only because the config asks for 64 px, and said so
        assert any("resized 32×32 → 64×64" in t for t in logs)
    # no judge fits coloured shapes by default: the measures are off and the result says why
    assert res.judge == "none" and res.evaluation == {} and res.history == []
    assert "digit CNN only reads digits" in res.judge_note
    assert any("no judge" in t for t in logs)


def test_a_classifier_whose_card_names_the_classes_judges_the_samples(shapes, tmp_path):
    net = ColourNet().eval()
    path = tmp_path / "shapes.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 32, 32),)), str(path))
    write_card(ModelCard(input_shape=(3, 32, 32), classes=tuple(sorted(CLASSES))), path)
    cfg = GanConfig(
        dataset=f"folder:{shapes}",
        image_size=32,
        channels=3,
        eval_every=3,
        judge=f"file:{path}",
        **TINY,
    )
    out = drive(train_gan(cfg), keep_events=True)
    res = out.result
    assert "shapes" in res.judge  # the result names its judge
    assert [h["step"] for h in res.history] == [0.0, 3.0]
    ev = res.evaluation
    assert 0 <= ev["classes_covered"] <= 10 and ev["classes_covered"] == int(ev["classes_covered"])
    assert 0 <= ev["class_entropy"] <= math.log(10) + 1e-9
    assert math.isfinite(ev["frechet"]) and ev["frechet"] >= 0
    _grid_is_colour(res.samples)
    evals = [e for e in out.events if isinstance(e, Metrics) and "frechet" in e.values]
    assert [e.step for e in evals] == [0, 3]


def test_a_judge_of_other_classes_is_refused(shapes):
    cfg = GanConfig(dataset=f"folder:{shapes}", image_size=32, channels=3, eval_every=3, **TINY)
    five = colour_classifier()
    five.class_names = five.class_names[:5]
    with pytest.raises(ConfigError, match="has 5 classes but .* has 10"):
        drive(train_gan(cfg, judge=five))


def test_the_judges_features_are_its_last_layers_input():
    clf = colour_classifier()
    x = torch.rand(6, 3, 32, 32)
    judge = Judge("", "colour-net", clf)
    feats, logits = judge.features_and_logits(x, batch_size=4)
    with torch.no_grad():
        want = clf.net.body[:-1](x)
        assert torch.allclose(feats, want, atol=1e-6)
        assert torch.allclose(logits, clf(x), atol=1e-6)


def test_a_conditional_gan_takes_the_class_count_from_the_data_set(shapes):
    cfg = GanConfig(
        dataset=f"folder:{shapes}",
        image_size=32,
        channels=3,
        eval_every=0,
        conditional=True,
        **TINY,
    )
    assert cfg.num_classes == 0  # the data set's
    res = drive(train_gan(cfg)).result
    assert res.config.num_classes == len(CLASSES)
    assert res.samples.shape == (10 * 34 + 2, 8 * 34 + 2, 3)  # one row per class
    with pytest.raises(ConfigError, match="num_classes is 7 but .* has 10 classes"):
        drive(train_gan(GanConfig(**{**cfg.__dict__, "num_classes": 7})))


def test_which_classifier_fits_which_data_set():
    cifar = ModelCard(input_shape=(3, 32, 32), classes="cifar10")
    assert card_fits("torchvision:cifar10", [], [], cifar)
    assert not card_fits("torchvision:svhn", [], [], cifar)
    digits = ModelCard(input_shape=(1, 28, 28), classes="digits")
    assert card_fits("digits", [], [], digits) and card_fits("torchvision:mnist", [], [], digits)
    assert card_fits("folder:/x", CLASSES, CLASSES, None)
    assert not card_fits("folder:/x", CLASSES, CLASSES[::-1], None)
    # "auto" is the digit CNN on digits and none elsewhere, with the reason
    none = make_judge("auto", "folder:/x", CLASSES)
    assert not none.active and "digit CNN" in none.why
    assert make_judge("none", "digits", []).why.startswith("the judge is switched off")


def test_the_window_picks_the_open_model_only_when_it_fits(shapes):
    from advstudio.core.gan.judge import dataset_classes, window_judge

    folder = f"folder:{shapes}"
    assert dataset_classes(folder) == sorted(CLASSES)
    assert dataset_classes("torchvision:cifar10")[0] == "airplane"  # nothing downloaded
    assert window_judge("digits", "", None)[0] == "auto"
    clf = colour_classifier()
    choice, line = window_judge(folder, "file:/m/shapes.pt2", clf)  # CLASSES, not sorted
    assert choice == "none" and "colour-net" in line and "is not a classifier" in line
    clf.class_names = sorted(CLASSES)
    choice, line = window_judge(folder, "file:/m/shapes.pt2", clf)
    assert choice == "file:/m/shapes.pt2" and line.startswith("Judge: your model colour-net")


def test_a_card_less_judge_takes_its_card_inline_as_the_cli_does(shapes, tmp_path):
    from advstudio.core.jobkinds import build_config, config_to_dict

    path = tmp_path / "bare.pt2"  # no card beside it
    torch.export.save(torch.export.export(ColourNet().eval(), (torch.rand(2, 3, 32, 32),)), path)
    values = {
        "dataset": f"folder:{shapes}",
        "image_size": 32,
        "channels": 3,
        "eval_every": 3,
        "judge": f"file:{path}",
        "judge_card": {"input_shape": [3, 32, 32], "classes": sorted(CLASSES)},
        **TINY,
    }
    cfg = build_config("gan", values)  # what advstudio-run builds from a TOML's [judge_card]
    assert isinstance(cfg.judge_card, ModelCard)
    assert config_to_dict(cfg)["judge_card"]["classes"] == sorted(CLASSES)  # recorded
    res = drive(train_gan(cfg)).result
    assert "bare" in res.judge and set(res.evaluation) >= {"frechet", "classes_covered"}
    bare = build_config("gan", {k: v for k, v in values.items() if k != "judge_card"})
    with pytest.raises(ModelLoadError, match="no model card"):
        drive(train_gan(bare))


def test_a_picked_network_of_other_classes_judges_as_a_feature_network(shapes, tmp_path):
    path = tmp_path / "five.pt2"  # 5 classes: not the data set's 10
    net = ColourNet(classes=5).eval()
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 32, 32),)), path)
    write_card(ModelCard(input_shape=(3, 32, 32), classes=tuple("abcde")), path)
    cfg = GanConfig(
        dataset=f"folder:{shapes}",
        image_size=32,
        channels=3,
        eval_every=3,
        judge=f"file:{path}",
        **TINY,
    )
    out = drive(train_gan(cfg), keep_events=True)
    ev = out.result.evaluation
    assert set(ev) == {"frechet", "sample_diversity"}  # no class measures from other classes
    assert math.isfinite(ev["frechet"])
    assert any("feature network" in e.text for e in out.events if isinstance(e, Log))
