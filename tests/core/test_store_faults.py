"""Faults injected into the run store, the atomic writes and advstudio-run: a full disk
(``ENOSPC``, torch's ``unexpected pos``, SQLite's ``database or disk is full``) and a read-only
disk (``EROFS``) each give one clear error, and nothing already recorded is lost."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import zipfile

import pytest

import advstudio.core.atomic as atomic
from advstudio.cli import EXIT_FAILED, EXIT_USAGE, main
from advstudio.core.errors import DiskFullError, ReadOnlyError
from advstudio.core.runs import RunStore
from advstudio.core.runs.index import RunIndex


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture
def store(tmp_path):
    """A store holding one finished run, the thing that must survive every fault."""
    store = RunStore.open(tmp_path / "store")
    with store.record("evaluate", {"model": "digits-cnn"}) as rec:
        rec.log_metrics(1, {"accuracy": 0.9})
        rec.finish({"accuracy": 0.9})
    store.kept = rec.run_id
    return store


def _still_there(store: RunStore) -> None:
    assert [info.id for info in RunStore.open(store.root).list_runs()] == [store.kept]
    assert store.read_metrics(store.kept) == [{"step": 1, "accuracy": 0.9}]


FULL_INDEX = sqlite3.OperationalError("database or disk is full")


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


def test_a_full_index_is_reported_and_never_deleted(store, monkeypatch):
    monkeypatch.setattr(RunIndex, "put", _raise(FULL_INDEX))
    destroyed = []
    monkeypatch.setattr(RunIndex, "destroy", lambda self: destroyed.append(self))
    with pytest.raises(DiskFullError, match="the disk is full .*free space or choose another"):
        store.record("evaluate", {"model": "digits-cnn"})
    assert destroyed == [] and store.index.path.is_file()
    monkeypatch.undo()
    _still_there(store)  # and the run that could not be indexed is not half there


@pytest.mark.parametrize(
    "code, kind", [(errno.ENOSPC, DiskFullError), (errno.EROFS, ReadOnlyError)]
)
def test_a_full_or_read_only_disk_when_recording_leaves_no_half_run(store, monkeypatch, code, kind):
    monkeypatch.setattr(os, "fsync", _raise(OSError(code, os.strerror(code))))
    with pytest.raises(kind):
        store.record("evaluate", {"model": "digits-cnn"})
    monkeypatch.undo()
    assert [p.name for p in store.runs_dir.iterdir()] == [store.kept]  # no staging, no temp
    _still_there(store)


def test_the_cli_says_in_one_line_that_the_store_is_full(store, tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "e.toml"
    cfg.write_text('kind = "evaluate"\n')
    monkeypatch.setattr(RunIndex, "put", _raise(FULL_INDEX))
    assert main([str(cfg), "--quiet", "--dry-run", "--store", str(store.root)]) == EXIT_FAILED
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot record the run" in lines[0] and "disk is full" in lines[0]
    monkeypatch.undo()
    assert store.kept in [info.id for info in RunStore.open(store.root).list_runs()]


def test_out_on_a_read_only_disk_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    cfg = tmp_path / "e.toml"
    cfg.write_text('kind = "evaluate"\n')
    monkeypatch.setattr(Path, "mkdir", _raise(OSError(errno.EROFS, "Read-only file system")))
    assert (
        main([str(cfg), "--quiet", "--dry-run", "--no-record", "--out", str(tmp_path / "out")])
        == EXIT_USAGE
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write to --out" in lines[0] and "read-only" in lines[0]


def test_a_full_disk_while_checkpointing_is_said_plainly(tmp_path, monkeypatch):
    import torch

    target = tmp_path / "checkpoint.pt"
    atomic.atomic_torch_save({"step": 1}, target)
    monkeypatch.setattr(
        torch,
        "save",
        _raise(
            RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4031")
        ),
    )
    with pytest.raises(DiskFullError) as caught:
        atomic.atomic_torch_save({"step": 2}, target)
    assert str(caught.value) == (
        f"the disk is full ({tmp_path}): free space or choose another folder"
    )
    assert torch.load(target, weights_only=True) == {"step": 1}  # the last good one is kept
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_a_full_disk_while_recording_metrics_keeps_what_was_flushed(store, monkeypatch):
    with store.record("train", {}) as rec:
        rec.log_metrics(1, {"loss": 1.0})
        rec.flush()
        rec.log_metrics(2, {"loss": 0.5})
        monkeypatch.setattr(rec._metrics, "write", _raise(OSError(errno.ENOSPC, "No space")))
        with pytest.raises(DiskFullError):
            rec.flush()
        monkeypatch.undo()
        rec.finish()
    assert store.read_metrics(rec.run_id)[0] == {"step": 1, "loss": 1.0}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.skipif(sys.platform == "win32", reason="orphans are judged by POSIX pids")
def test_orphan_temp_files_of_dead_writers_are_cleaned_when_the_store_opens(store):
    artifacts = store.run_path(store.kept) / "artifacts"
    orphan = artifacts / f".checkpoint.pt.{_dead_pid()}-0123abcd.tmp"
    live = artifacts / f".checkpoint.pt.{os.getpid()}-4567cdef.tmp"  # a write in progress
    orphan.write_bytes(b"half")
    live.write_bytes(b"half")
    RunStore.open(store.root)
    assert not orphan.exists() and live.exists()
    assert store.artifacts(store.kept) == []  # temp files are never listed
    _still_there(store)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_exports_skip_symlinks_leading_out_of_the_run(store, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("private")
    artifacts = store.run_path(store.kept) / "artifacts"
    (artifacts / "real.txt").write_text("mine")
    os.symlink(secret / "key.txt", artifacts / "key.txt")
    os.symlink(secret, artifacts / "linked_dir")
    assert store.artifacts(store.kept) == ["real.txt"]
    with zipfile.ZipFile(store.export(store.kept, tmp_path / "run.zip")) as zf:
        names = zf.namelist()
    assert f"{store.kept}/artifacts/real.txt" in names
    assert not any("key" in n or "linked_dir" in n for n in names)
    folder = store.export(store.kept, tmp_path / "copy", as_zip=False)
    assert sorted(p.name for p in (folder / "artifacts").iterdir()) == ["real.txt"]


def test_divergence_message_does_not_ask_for_a_checkpoint_path_already_set():
    from advstudio.core.errors import TrainingDivergedError
    from advstudio.core.training import Divergence

    with pytest.raises(TrainingDivergedError) as caught:
        Divergence(max_loss=10.0).check({"loss": float("nan"), "grad_norm": 1.0}, 3)
    assert "set checkpoint_path" not in str(caught.value)
    assert "no checkpoint had been written yet" in str(caught.value)


def test_a_locked_index_is_retried_not_raised(tmp_path, monkeypatch):
    """Two processes opening a new store together: SQLite may refuse the switch to WAL with
    'database is locked' at once, without waiting; the index retries instead of failing."""
    import sqlite3

    from advstudio.core.runs.index import RunIndex

    index = RunIndex(tmp_path / "index.sqlite")
    real, calls = index._ensure, []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        real()

    monkeypatch.setattr(index, "_ensure", flaky)
    monkeypatch.setattr("advstudio.core.runs.index.time_module.sleep", lambda s: None)
    index.ensure()
    assert len(calls) == 3 and (tmp_path / "index.sqlite").is_file()

    def broken():
        raise sqlite3.OperationalError("disk I/O error")  # not a lock: raised at once

    monkeypatch.setattr(index, "_ensure", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        index.ensure()


def test_processes_opening_a_new_store_together_all_succeed(tmp_path):
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from advstudio.core.runs.store import RunStore\n"
        "t0 = float(sys.argv[2])\n"
        "while time.time() < t0: pass\n"
        "RunStore.open(sys.argv[1])\n"
    )
    for round_ in range(3):
        root, start = tmp_path / f"store{round_}", time.time() + 1.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(root), str(start)], stderr=subprocess.PIPE
            )
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
