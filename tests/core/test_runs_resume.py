"""Config files for advstudio-run (the GUI's "Export as config") and resuming recorded runs."""

from __future__ import annotations

import json
import tomllib

import pytest
import torch

from advstudio.cli import read_config_file
from advstudio.core.errors import ConfigError
from advstudio.core.gan import GanConfig
from advstudio.core.gan.train import train_gan
from advstudio.core.jobkinds import JOB_KINDS, build_config, config_to_dict
from advstudio.core.jobs import Metrics, drive
from advstudio.core.runs import CHECKPOINT, RunStore
from advstudio.core.runs.configfile import to_toml, write_config
from advstudio.core.runs.resume import checkpoints, with_run_checkpoint
from advstudio.core.runs.wrap import recorded


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_every_kind_round_trips_through_a_config_file(kind, suffix, tmp_path):
    config_cls, _ = JOB_KINDS[kind].load()
    config = config_cls()
    path = write_config(
        tmp_path / f"job{suffix}", kind, config_to_dict(config), comment="hi\nthere"
    )
    data = read_config_file(path)
    assert data.pop("kind") == kind
    assert build_config(kind, data) == config


def test_toml_writes_the_awkward_values_tomllib_reads_back():
    values = {
        "s": 'a "quoted" \\ path\nwith newline',
        "f": 1e-5,
        "i": 3,
        "b": False,
        "l": [0.0, 0.25, 1],
        "inf": float("inf"),
        "none": None,
    }
    back = tomllib.loads(to_toml("x", values))
    assert back["s"] == values["s"] and back["f"] == 1e-5 and back["b"] is False
    assert back["l"] == [0.0, 0.25, 1] and back["inf"] == float("inf")
    assert "none" not in back and back["kind"] == "x"


def test_a_config_file_needs_a_known_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"\.toml or \.json"):
        write_config(tmp_path / "job.yaml", "gan", {})
    assert json.loads(write_config(tmp_path / "j.json", "gan", {"steps": 3}).read_text()) == {
        "kind": "gan",
        "steps": 3,
    }


def test_only_configs_with_checkpoint_and_resume_fields_checkpoint(tmp_path):
    from advstudio.core.evaluate import EvaluateConfig

    assert checkpoints(GanConfig()) and not checkpoints(EvaluateConfig())
    assert with_run_checkpoint(EvaluateConfig(), tmp_path) == EvaluateConfig()
    mine = GanConfig(checkpoint_path=str(tmp_path / "mine.pt"))
    assert with_run_checkpoint(mine, tmp_path) == mine  # the user's own path is kept
    auto = with_run_checkpoint(GanConfig(), tmp_path / "run")
    assert auto.checkpoint_path == str(tmp_path / "run" / "artifacts" / CHECKPOINT)
    with pytest.raises(ConfigError, match="nothing to resume"):
        with_run_checkpoint(GanConfig(), tmp_path, resume_from=tmp_path / "missing.pt")


TINY = dict(
    arch="gan", batch_size=8, eval_every=0, preview_rate=0.0, checkpoint_every=3, steps=9, seed=5
)


def test_a_cancelled_gan_run_resumes_from_its_own_checkpoint(tmp_path):
    store = RunStore.open(tmp_path / "store")
    config = GanConfig(**TINY)
    job = recorded(store, "gan", config, train_gan)
    seen = []
    for event in job:
        if isinstance(event, Metrics) and "loss_d" in event.values:
            seen.append(event.step)
            if len(seen) == 5:  # past the checkpoint of step 3, before the one of step 6
                break
    job.close()
    (first,) = store.list_runs()
    assert str(first.status) == "cancelled" and store.resumable(first.id)
    assert store.rerun_config(first.id)[1]["checkpoint_path"] == ""  # as the user asked

    checkpoint = store.run_path(first.id) / "artifacts" / CHECKPOINT
    resumed = drive(
        recorded(store, "gan", config, train_gan, resume_from=checkpoint), keep_events=True
    )
    steps = [e.step for e in resumed.events if isinstance(e, Metrics) and "loss_d" in e.values]
    assert steps and min(steps) > 3 and max(steps) == TINY["steps"]

    fresh = drive(train_gan(config)).result  # the uninterrupted run, for comparison
    assert resumed.result.generator_state.keys() == fresh.generator_state.keys()
    for key, value in fresh.generator_state.items():
        torch.testing.assert_close(resumed.result.generator_state[key], value)
    # every run owns its checkpoint: the first is untouched by the resumed one
    assert checkpoint.is_file()
    second = next(r for r in store.list_runs() if r.id != first.id)
    assert (store.run_path(second.id) / "artifacts" / CHECKPOINT).is_file()
