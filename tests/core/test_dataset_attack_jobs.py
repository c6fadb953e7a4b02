"""The ``patch`` and ``universal`` job kinds through advstudio-run: recorded in the run store
with the patch / perturbation kept as arrays, their rates equal to the core's own measures on
the same images; a bad config exits 2 with one line."""

from __future__ import annotations

import json

import pytest
import torch

from advstudio.cli import EXIT_OK, EXIT_USAGE, main
from advstudio.core.jobkinds import build_config, config_to_dict
from advstudio.core.runs import RunStore


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _only_run(store_dir, kind):
    store = RunStore.open(store_dir)
    runs = store.list_runs(kind=kind)
    assert len(runs) == 1 and runs[0].status == "finished"
    return store, runs[0]


def test_patch_job_trains_records_and_rescales(tmp_path, capsys):
    from advstudio.core.attacks.patch import success_rate, train_test_images
    from advstudio.core.models.registry import load_model

    cfg = _write(
        tmp_path,
        "p.toml",
        'kind = "patch"\nmodel = "digits-cnn"\ntarget = 3\narea = 0.1\nsteps = 3\n'
        'n_train = 16\nn_test = 16\ncurve = "rescale"\nareas = [0.05, 0.2]\ndevice = "cpu"\n',
    )
    store_dir = tmp_path / "store"
    assert main([str(cfg), "--quiet", "--store", str(store_dir)]) == EXIT_OK
    store, run = _only_run(store_dir, "patch")
    result = store.read_result(run.id)
    patch = torch.tensor(result["patch"], dtype=torch.float32)
    assert patch.shape == (1, 9, 9)  # sqrt(0.1 * 784) = 8.85 -> 9
    assert 0 <= float(patch.min()) and float(patch.max()) <= 1
    assert result["areas"] == [0.05, 0.2] and len(result["size_success"]) == 2
    # the recorded array is the patch the rate was measured with, exactly
    model = load_model("digits-cnn", "cpu")
    _, x_test, _ = train_test_images("digits", "test", "none", model, 16, 16, 0)
    assert result["success"] == success_rate(model, x_test, patch, 3)
    assert result["n_test"] == 16 and run.summary["success"] == result["success"]
    assert "patch.png" in store.artifacts(run.id)
    kind, values = store.rerun_config(run.id)
    assert kind == "patch" and build_config(kind, values).areas == (0.05, 0.2)
    assert json.loads(capsys.readouterr().out)["result"]["patch"] == result["patch"]


def test_universal_dry_run_stays_inside_eps_and_records_the_curve(tmp_path):
    from advstudio.core.attacks.patch import train_test_images
    from advstudio.core.attacks.universal import fooling_rate
    from advstudio.core.models.registry import load_model

    cfg = _write(
        tmp_path,
        "u.toml",
        'kind = "universal"\neps = 0.1\ninner_steps = 2\ncurve = "rescale"\n'
        'epsilons = [0.05, 0.1]\ndevice = "cpu"\n',
    )
    store_dir = tmp_path / "store"
    assert main([str(cfg), "--dry-run", "--quiet", "--store", str(store_dir)]) == EXIT_OK
    store, run = _only_run(store_dir, "universal")
    result = store.read_result(run.id)
    v = torch.tensor(result["v"], dtype=torch.float32)
    assert v.shape == (1, 28, 28) and float(v.abs().max()) <= 0.1 + 1e-7
    assert result["target"] is None and result["n_held"] == 8 and len(result["history"]) == 1
    model = load_model("digits-cnn", "cpu")
    x_fit, x_held, _ = train_test_images("digits", "test", "none", model, 8, 8, 0)
    assert result["held_out_rate"] == fooling_rate(model, x_held, v)
    assert result["epsilons"] == [0.05, 0.1]
    assert result["held_out"] == [fooling_rate(model, x_held, v * e / 0.1) for e in (0.05, 0.1)]
    assert "perturbation.png" in store.artifacts(run.id)


@pytest.mark.parametrize(
    "text, message",
    [
        ('kind = "patch"\narea = 0.9\n', "area must be in (0, 0.5], not 0.9 (share of the image)"),
        ('kind = "patch"\ncurve = "sideways"\n', "curve must be one of none, rescale, retrain"),
        ('kind = "patch"\nareas = [0.1, 0.7]\n', "areas must be in (0, 0.5], not 0.7"),
        ('kind = "patch"\ntarget = -1\n', "target must be a whole number >= 0, not -1"),
        ('kind = "universal"\ntarget = "3"\n', "target must be a whole number >= 0, not '3'"),
        ('kind = "universal"\nepsilons = "0.1"\n', "epsilons must be a list"),
        ('kind = "universal"\ndelta = 1\n', "delta must be in [0, 1), not 1"),
        ('kind = "universal"\ncurve = "retrain"\n', "curve must be one of none, rescale, refit"),
    ],
)
def test_bad_configs_exit_2_with_one_line(tmp_path, capsys, text, message):
    cfg = _write(tmp_path, "bad.toml", text)
    assert main([str(cfg), "--quiet", "--no-record"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("advstudio-run: bad config: ")
    assert message in err[0]


def test_configs_round_trip_and_untargeted_is_left_out():
    config = build_config("universal", {"epsilons": [0, 0.1], "curve": "refit"})
    values = config_to_dict(config)
    assert "target" not in values and build_config("universal", values) == config
    config = build_config("patch", {"areas": [0.05], "target": 7, "curve": "retrain"})
    assert build_config("patch", config_to_dict(config)) == config


def test_list_names_both_kinds(capsys):
    assert main(["--list"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("patch ") for line in lines)
    assert any(line.startswith("universal ") for line in lines)


@pytest.fixture
def in_memory(tmp_path):
    """A tiny colour CNN given as an nn.Module (registered as memory:...) and a folder of shapes."""
    from advstudio.core.models import memory
    from tests.core.colour_data import CLASSES, ColourNet, colour_folder

    before = set(memory.registered())
    torch.manual_seed(0)
    yield (
        ColourNet(),
        {"input_shape": [3, 32, 32], "classes": CLASSES},
        colour_folder(tmp_path / "shapes", per_class=2, junk=False),
    )
    for key in set(memory.registered()) - before:
        memory.unregister(key)


def test_retrained_patches_and_refit_perturbations_on_an_in_memory_model(in_memory):
    from advstudio.core.attacks.dataset_attacks import (
        PatchConfig,
        UniversalConfig,
        run_patch,
        run_universal,
    )
    from advstudio.core.attacks.patch import success_rate, train_patch, train_test_images
    from advstudio.core.attacks.universal import universal_perturbation
    from advstudio.core.jobs import drive
    from advstudio.core.models.registry import load_model

    net, card, root = in_memory
    data = {"dataset": f"folder:{root}", "split": "all", "device": "cpu"}
    config = PatchConfig(
        model=net, card=card, target=1, steps=2, curve="retrain", areas=(0.05, 0.1),
        n_train=8, n_test=8, **data,
    )  # fmt: skip
    assert config.model.startswith("memory:") and config.card.input_shape == (3, 32, 32)
    run = drive(run_patch(config)).result
    assert run.patch is None and run.patch_result() is None  # a curve alone: no single patch
    model = load_model(config.model, "cpu")
    x_train, x_test, _ = train_test_images(f"folder:{root}", "all", "none", model, 8, 8, 0)
    curve = run.size_curve()
    assert curve.retrained and [p.shape for p in curve.patches] == [(3, 7, 7), (3, 10, 10)]
    alone = train_patch(model, x_train, x_test, 1, area=0.1, steps=2, seed=0)
    assert torch.equal(curve.patches[1], alone.patch)  # each size its own training, kept
    assert run.size_success == [success_rate(model, x_test, p, 1) for p in curve.patches]

    config = UniversalConfig(
        model=config.model, eps=0.05, passes=1, inner_steps=2, curve="refit",
        epsilons=(0.03,), n_fit=8, n_held=8, **data,
    )  # fmt: skip
    run = drive(run_universal(config)).result
    assert run.v is None and run.eps_curve().refit
    x_fit, x_held, _ = train_test_images(f"folder:{root}", "all", "none", model, 8, 8, 0)
    alone = universal_perturbation(model, x_fit, x_held, 0.03, passes=1, inner_steps=2)
    assert run.held_out == [alone.held_out_rate] and run.fit == [alone.fit_rate]
