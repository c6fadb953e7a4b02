"""Trained weights are kept as files with a card, and JSON never holds a tensor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from advstudio.cli import EXIT_OK, EXIT_USAGE, main
from advstudio.core.models.registry import load_user_model
from advstudio.core.runs import RunStatus, RunStore
from advstudio.core.runs.files import plain
from advstudio.core.runs.models import keep_models


def test_plain_turns_scalars_into_numbers_and_drops_weights_and_non_finite_floats():
    value = {
        "a": np.float32(0.5),
        "b": torch.tensor(3),
        "nan": float("nan"),
        "p": Path("x/y"),
        "inf": np.float64("inf"),
        "t": (1, 2),
        "w": {"layer.weight": torch.ones(2, 2)},
        "grid": np.zeros((2, 2)),
    }
    assert plain(value) == {
        "a": 0.5,
        "b": 3,
        "nan": None,
        "p": "x/y",
        "inf": None,
        "t": [1, 2],
        "w": None,
        "grid": "<ndarray>",
    }
    assert plain({"loss": torch.tensor(0.25)}) == {"loss": 0.25}  # scalars are numbers


@dataclass
class _Outer:
    inner: dict
    state_dict: dict


def test_keep_models_names_every_state_dict_by_its_field(tmp_path):
    weights = {"w": torch.arange(3.0)}
    result = _Outer(
        inner={"generator_state": weights, "state_dict": {"b": torch.ones(2)}, "again": weights},
        state_dict={"c": torch.zeros(1)},
    )
    kept = keep_models(result, tmp_path, prefix="artifacts/")
    assert kept == {
        "inner": {
            "generator_state": "artifacts/generator.pt",
            "state_dict": "artifacts/inner_model.pt",
            "again": "artifacts/generator.pt",
        },  # one object, one file
        "state_dict": "artifacts/model.pt",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generator.json",
        "generator.pt",
        "inner_model.json",
        "inner_model.pt",
        "model.json",
        "model.pt",
    ]
    assert torch.equal(
        torch.load(tmp_path / "generator.pt", weights_only=True)["w"], torch.arange(3.0)
    )
    assert json.loads((tmp_path / "inner_model.json").read_text())["field"] == "inner.state_dict"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_a_cli_training_keeps_its_model_with_a_card_the_app_can_load(tmp_path, capsys):
    cfg = _write(tmp_path, 'kind = "train"\narch = "digits-mlp"\ndevice = "cpu"\n')
    assert main([str(cfg), "--dry-run", "--quiet", "--store", str(tmp_path / "store")]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    store = RunStore.open(tmp_path / "store")
    run = store.get(summary["run_id"])
    assert summary["run_folder"] == str(run.path)
    assert summary["result"]["state_dict"] == "artifacts/model.pt"
    assert "<Tensor>" not in (run.path / "result.json").read_text()
    assert store.read_result(run.id) == summary["result"]
    card = json.loads((run.path / "artifacts" / "model.json").read_text())
    assert card["weights"] == "model.pt" and card["architecture"] == "digits-mlp"
    assert card["role"] == "classifier" and card["input_shape"] == [1, 28, 28]
    assert len(card["class_names"]) == 10 and len(card["mean"]) == len(card["std"]) == 1
    weights = torch.load(run.path / "artifacts" / "model.pt", weights_only=True)
    model = load_user_model(run.path / "artifacts" / "model.pt", card["architecture"])
    assert all(torch.equal(model.net.state_dict()[k], v) for k, v in weights.items())


def test_an_unrecorded_run_keeps_its_model_in_out(tmp_path, capsys):
    cfg = _write(tmp_path, 'kind = "train"\narch = "digits-mlp"\ndevice = "cpu"\n')
    out = tmp_path / "out"
    assert main([str(cfg), "--dry-run", "--quiet", "--no-record", "--out", str(out)]) == EXIT_OK
    summary = json.loads((out / "result.json").read_text())
    assert summary["result"]["state_dict"] == "model.pt" and (out / "model.json").is_file()
    assert torch.load(out / "model.pt", weights_only=True).keys()


def test_resume_needs_a_resumable_run(tmp_path, capsys):
    root = tmp_path / "store"
    cfg = _write(tmp_path, 'kind = "evaluate"\n')
    assert main([str(cfg), "--dry-run", "--quiet", "--store", str(root)]) == EXIT_OK
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert RunStore.open(root).get(run_id).status is RunStatus.FINISHED
    assert main(["--resume", run_id, "--store", str(root)]) == EXIT_USAGE
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert main(["--resume", "20990101-000000-gan-0123abcd", "--store", str(root)]) == EXIT_USAGE
    assert "no run" in capsys.readouterr().err
    assert main(["--resume", run_id, "--no-record"]) == EXIT_USAGE
    assert main([str(cfg), "--resume", run_id]) == EXIT_USAGE


def test_a_bare_tensor_in_a_result_is_kept_as_a_file_without_a_card(tmp_path):
    images = torch.rand(2, 1, 4, 4)
    result = {"x": images, "scale": torch.tensor(2.0), "inner": {"n": 2, "x_adv": images[:1]}}
    assert keep_models(result, tmp_path, prefix="artifacts/") == {
        "x": "artifacts/x.pt",
        "scale": 2.0,  # a scalar stays a number
        "inner": {"n": 2, "x_adv": "artifacts/x_adv.pt"},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt", "x_adv.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True), images)


@pytest.mark.parametrize(
    "kind", ["boundary", "defence-eval", "patch", "universal", "gan", "poison"]
)
def test_the_attack_panels_jobs_record_no_placeholder(kind, tmp_path, capsys):
    cfg = _write(tmp_path, f'kind = "{kind}"\ndevice = "cpu"\n')
    assert main([str(cfg), "--dry-run", "--quiet", "--store", str(tmp_path / "store")]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    run = RunStore.open(tmp_path / "store").get(summary["run_id"])
    text = (run.path / "result.json").read_text()
    assert "<Tensor>" not in text and "<ndarray>" not in text


def test_a_numpy_array_in_a_result_is_kept_as_npy(tmp_path):
    samples = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert keep_models({"samples": samples, "n": np.float32(3)}, tmp_path) == {
        "samples": "samples.npy",
        "n": 3.0,
    }
    assert np.array_equal(np.load(tmp_path / "samples.npy", allow_pickle=False), samples)
