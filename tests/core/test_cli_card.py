"""advstudio-run with the model card inline in the job config: a card-less model file is refused
before anything is recorded, naming the missing fields in one line (exit 2); with a ``[card]``
table the run works, records the card, and its rerun loads the model the same way."""

from __future__ import annotations

import json

import pytest
import torch

from advstudio.cli import EXIT_OK, EXIT_USAGE, main
from advstudio.core.attacks.sweep import SweepConfig, run_sweep
from advstudio.core.jobkinds import build_config
from advstudio.core.jobs import drive
from advstudio.core.models import memory
from advstudio.core.runs import RunStore
from tests.core.colour_data import CLASSES, ColourNet, colour_folder

CARD_TABLE = '[card]\ninput_shape = [3, 32, 32]\nclasses = ["' + '", "'.join(CLASSES) + '"]\n'


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture
def colour(tmp_path):
    """A TorchScript colour net without a card beside it, its module and a colour folder."""
    torch.manual_seed(0)
    net = ColourNet().eval()
    path = tmp_path / "net.pt"
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(path))
    return path, net, colour_folder(tmp_path / "shapes", per_class=2, junk=False)


def _sweep_toml(tmp_path, model, folder, extra=""):
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'kind = "sweep"\nmodel = "file:{model}"\ndataset = "folder:{folder}"\nsplit = "all"\n'
        'attacks = ["fgsm", "pgd"]\nepsilons = [0, 0.05]\nn_images = 20\nbatch_size = 8\n'
        'device = "cpu"\n' + extra
    )
    return path


def _no_runs(tmp_path) -> bool:
    return not list((tmp_path / "home").rglob("config.json"))


def test_a_card_less_model_file_is_refused_naming_the_missing_fields(tmp_path, colour, capsys):
    model, _, folder = colour
    assert main([str(_sweep_toml(tmp_path, model, folder)), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "advstudio-run: bad config: model file net.pt has no model card giving input_shape, "
        "classes: add them to the config's [card] table"
    )
    assert "a probe found 3×32×32 input and 10 classes" in err[0]
    assert _no_runs(tmp_path)


@pytest.mark.parametrize(
    "card, message",
    [
        ("[card]\ninput_shape = [3, 32, 32]\n", "section 'card' lacks 'card.classes'"),
        (CARD_TABLE + "colour = 1\n", "unknown key 'card.colour' for section 'card'"),
        ('[card]\ninput_shape = [3, 32]\nclasses = "cifar10"\n', "input_shape must be three"),
        ('[card]\ninput_shape = [3, 32, 32]\nclasses = "cifar11"\n', "classes must be one of"),
        (CARD_TABLE + "mean = [0.5, 0.5, 0.5]\n", "mean and std must be given together"),
    ],
)
def test_a_bad_inline_card_exits_2_with_one_line(tmp_path, colour, capsys, card, message):
    model, _, folder = colour
    assert main([str(_sweep_toml(tmp_path, model, folder, card)), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("advstudio-run: bad config:")
    assert message in err[0]
    assert _no_runs(tmp_path)


def test_a_weights_file_card_without_architecture_and_a_built_in_with_a_card(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.save(ColourNet().state_dict(), weights)
    cfg = tmp_path / "e.toml"
    cfg.write_text(f'kind = "evaluate"\nmodel = "file:{weights}"\n' + CARD_TABLE)
    assert main([str(cfg), "--quiet"]) == EXIT_USAGE
    assert "w.pt has no model card giving architecture: add it to the config's [card]" in (
        capsys.readouterr().err
    )
    cfg.write_text('kind = "evaluate"\nmodel = "digits-cnn"\n' + CARD_TABLE)
    assert main([str(cfg), "--quiet"]) == EXIT_USAGE
    assert "'digits-cnn' has its own card" in capsys.readouterr().err


def test_an_inline_card_runs_records_and_reruns_the_same_model(tmp_path, colour, capsys):
    model, net, folder = colour
    cfg = _sweep_toml(tmp_path, model, folder, CARD_TABLE)
    assert main([str(cfg), "--quiet", "--store", str(tmp_path / "store")]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    card = {k: v for k, v in summary["config"]["card"].items() if v not in (None, "")}
    assert card == {"input_shape": [3, 32, 32], "classes": CLASSES, "value_range": [0.0, 1.0]}
    # the file with its inline card is the module itself: the same predictions, image for image
    values = {k: v for k, v in summary["config"].items() if k not in ("model", "card")}
    key = memory.register(net, card, name="cli-card-test")
    try:
        same = drive(run_sweep(build_config("sweep", {**values, "model": key}))).result
    finally:
        memory.unregister(key)
    result = summary["result"]
    assert result["clean_predictions"] == same.clean_predictions
    for name in ("fgsm", "pgd"):
        assert result["curves"][name]["predictions"] == same.curves[name].predictions
        assert result["curves"][name]["accuracy"] == same.curves[name].accuracy
    # the recorded config holds the card: a rerun builds the same config, the same model
    store = RunStore.open(tmp_path / "store")
    kind, recorded = store.rerun_config(summary["run_id"])
    assert {k: v for k, v in recorded["card"].items() if v != ""} == card
    rerun = build_config(kind, recorded)
    assert rerun == SweepConfig(**{**rerun.__dict__, "card": card})
    assert main([str(cfg), "--quiet", "--no-record"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["result"] == result  # and the same result
