"""advstudio-run: configs, overrides, exit codes, outputs, determinism."""

from __future__ import annotations

import json

import pytest

from advstudio.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from advstudio.core.errors import ConfigError
from advstudio.core.jobkinds import JOB_KINDS, build_config, config_to_dict


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """advstudio-run records every run in the user data folder: keep it inside tmp_path."""
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_evaluate_toml_writes_result_and_metrics(tmp_path, capsys):
    cfg = _write(tmp_path, "e.toml", 'kind = "evaluate"\nmodel = "digits-cnn"\nlimit = 200\n')
    assert main([str(cfg), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == EXIT_OK
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["kind"] == "evaluate" and summary["config"]["device"] == "cpu"
    assert summary["result"]["n"] == 200 and 0.9 < summary["result"]["accuracy"] <= 1.0
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["accuracy"] == summary["result"]["accuracy"]
    assert json.loads(capsys.readouterr().out) == summary


def test_json_config_and_dry_run(tmp_path):
    cfg = _write(tmp_path, "e.json", json.dumps({"kind": "evaluate", "batch_size": 4}))
    assert main([str(cfg), "--dry-run", "--quiet", "--out", str(tmp_path / "o")]) == EXIT_OK
    assert json.loads((tmp_path / "o" / "result.json").read_text())["result"]["n"] == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ('kind = "evaluate"\nmodle = "x"\n', "unknown key 'modle'.*allowed: batch_size"),
        ('kind = "paint"\n', "unknown job kind 'paint'; allowed: evaluate"),
        ('model = "digits-cnn"\n', "must set kind"),
        ('kind = "evaluate"\nbatch_size = "many"\n', "batch_size must be a whole number"),
        ('kind = "evaluate"\nbatch_size = 0\n', "batch_size must be a whole number >= 1, not 0"),
        ("kind = = 1", "not valid TOML"),
    ],
)
def test_bad_configs_exit_2_and_name_the_problem(tmp_path, capsys, text, message):
    import re

    cfg = _write(tmp_path, "bad.toml", text)
    assert main([str(cfg), "--quiet"]) == EXIT_USAGE
    assert re.search(message, capsys.readouterr().err)


def test_missing_file_and_no_args(tmp_path, capsys):
    assert main([str(tmp_path / "none.toml")]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    assert main([]) == EXIT_USAGE


def test_a_model_the_config_names_but_nobody_has_exits_2(tmp_path, capsys):
    cfg = _write(tmp_path, "f.toml", f'kind = "evaluate"\nmodel = "file:{tmp_path}/gone.pt"\n')
    assert main([str(cfg), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("advstudio-run: bad config: model file not found")


def test_a_failing_job_exits_1_with_one_clear_line(tmp_path, capsys, monkeypatch):
    import advstudio.core.evaluate as evaluate

    def broken(config):
        yield from ()
        raise RuntimeError("the job broke")

    monkeypatch.setattr(evaluate, "evaluate", broken)
    cfg = _write(tmp_path, "f.toml", 'kind = "evaluate"\n')
    assert main([str(cfg), "--quiet"]) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "advstudio-run: evaluate failed: RuntimeError: the job broke"


def test_list(capsys):
    assert main(["--list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert all(kind in out for kind in JOB_KINDS)


def test_config_round_trip():
    config = build_config("sweep", {"epsilons": [0, 0.1], "attacks": ["fgsm"], "n_images": 10})
    assert build_config("sweep", config_to_dict(config)) == config
    with pytest.raises(ConfigError):
        build_config("sweep", {"epsilons": [2.0]})


def test_same_seed_same_metrics(tmp_path):
    cfg = _write(
        tmp_path,
        "s.toml",
        'kind = "sweep"\nattacks = ["pgd"]\nepsilons = [0.1]\n'
        'n_images = 40\nbatch_size = 40\ndevice = "cpu"\n',
    )
    for run in ("a", "b"):
        assert main([str(cfg), "--quiet", "--seed", "3", "--out", str(tmp_path / run)]) == EXIT_OK
    a = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert a and a == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_out_folder_gets_the_final_sample_grid(tmp_path):
    from PIL import Image

    cfg = _write(tmp_path, "g.toml", 'kind = "gan"\narch = "dcgan"\nsteps = 1\n')
    assert (
        main([str(cfg), "--dry-run", "--quiet", "--no-record", "--out", str(tmp_path / "o")])
        == EXIT_OK
    )
    grid = Image.open(tmp_path / "o" / "samples.png")
    assert grid.mode == "L" and grid.size[0] > 28 * 4  # 64 digits, 8 to a row
