"""A training started by advstudio-run survives a SIGKILL: it checkpointed into its run folder,
and ``--resume RUN_ID`` (the Runs tab's Resume: the same rerun config and checkpoint copy)
finishes it with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advstudio.core.gan import GanConfig
from advstudio.core.gan.checkpoint import load_checkpoint
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Metrics, drive
from advstudio.core.runs import CHECKPOINT, RunStatus, RunStore
from advstudio.core.runs.wrap import recorded

STEPS = 200
CONFIG = {
    "kind": "gan",
    "arch": "gan",
    "batch_size": 8,
    "steps": STEPS,
    "checkpoint_every": 10,
    "eval_every": 0,
    "preview_rate": 0.0,
    "seed": 5,
    "device": "cpu",
}


def _cli(tmp_path: Path, *args: str, processes: int = 1) -> subprocess.Popen:
    """``python -m advstudio.cli ARGS --store tmp_path/store``, one thread a process (bit-for-bit
    runs); with ``processes`` > 1 under ``torchrun`` (a free port of its own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVSTUDIO_HOME": str(tmp_path / "home")}
    launcher = (
        []
        if processes == 1
        else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    )
    return subprocess.Popen(
        [
            sys.executable,
            *launcher,
            "-m",
            "advstudio.cli",
            *args,
            "--quiet",
            "--store",
            str(tmp_path / "store"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its own process group: see _finish


def _finish(process: subprocess.Popen) -> dict:
    """The printed summary of a run that must succeed; a hung one (ranks that never meet) is
    killed with its workers."""
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def _weights(store: RunStore, run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(store.run_path(run_id) / "artifacts" / "generator.pt", weights_only=True)


@pytest.mark.slow
def test_a_killed_cli_gan_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    config = tmp_path / "gan.json"
    config.write_text(json.dumps(CONFIG))
    killed = _cli(tmp_path, str(config))
    deadline = time.monotonic() + 120  # a bound on the polling, not a timing assertion
    while not list((tmp_path / "store" / "runs").glob(f"*/artifacts/{CHECKPOINT}")):
        assert killed.poll() is None, killed.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()

    store = RunStore.open(tmp_path / "store")
    (first,) = store.list_runs()
    assert first.status is RunStatus.INTERRUPTED and store.resumable(first.id)
    checkpoint = store.run_path(first.id) / "artifacts" / CHECKPOINT
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert 0 < stopped_at < STEPS

    resumed = _cli(tmp_path, "--resume", first.id)
    reference = _cli(tmp_path, str(config))
    resumed_summary, reference_summary = _finish(resumed), _finish(reference)

    second = store.get(resumed_summary["run_id"])
    assert second.status is RunStatus.FINISHED and second.kind == "gan"
    steps = [m["step"] for m in store.read_metrics(second.id)]
    assert min(steps) == stopped_at + 1 and max(steps) == STEPS
    assert resumed_summary["result"]["generator_state"] == "artifacts/generator.pt"
    got, want = _weights(store, second.id), _weights(store, reference_summary["run_id"])
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    assert load_checkpoint(checkpoint)["step"] == stopped_at  # the killed run's is untouched


@pytest.mark.slow
def test_torchrun_resumes_a_cancelled_run_on_every_rank(tmp_path):
    """Rank 0 records and copies the checkpoint; every rank gets its config (resume, path),
    or the ranks would train different steps and never meet."""
    values = {
        **{k: v for k, v in CONFIG.items() if k != "kind"},
        "steps": 20,
        "checkpoint_every": 5,
    }
    store = RunStore.open(tmp_path / "store")
    job = recorded(store, "gan", GanConfig(**values), train_gan)
    for event in job:
        if isinstance(event, Metrics) and event.step == 7:  # past the checkpoint of step 5
            break
    job.close()
    (first,) = store.list_runs()
    assert first.status is RunStatus.CANCELLED

    summary = _finish(_cli(tmp_path, "--resume", first.id, processes=2))
    assert [r.id for r in store.list_runs()] == [summary["run_id"], first.id]  # rank 0 alone
    assert min(m["step"] for m in store.read_metrics(summary["run_id"])) == 6
    got = _weights(store, summary["run_id"])
    want = drive(train_gan(GanConfig(**values))).result.generator_state
    for key, value in want.items():  # two processes sum in another order than one
        torch.testing.assert_close(got[key], value, rtol=0, atol=2e-3)
