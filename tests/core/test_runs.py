"""The run store: recording, statuses, crash consistency, index rebuild, filters, CLI recording."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from advstudio.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main, run_job
from advstudio.core.jobkinds import build_config, config_to_dict
from advstudio.core.jobs import Log, Metrics, Progress
from advstudio.core.runs import (
    CHECKPOINT,
    Owner,
    RunNotFoundError,
    RunStatus,
    RunStore,
    RunStoreError,
    default_store_root,
)
from advstudio.core.runs import recorder as recorder_module

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Nothing here may touch the real user data folder."""
    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture
def store(tmp_path):
    return RunStore.open(tmp_path / "store")


def _record(store, kind="evaluate", config=None, metrics=(), status="finished", **kwargs):
    """A complete run: ``metrics`` is a list of value dicts, one per step."""
    rec = store.record(kind, config if config is not None else {"model": "digits-cnn"}, **kwargs)
    for step, values in enumerate(metrics):
        rec.log_event(Metrics(step, values))
    {"finished": rec.finish, "failed": lambda: rec.fail("boom"), "cancelled": rec.cancel}[status]()
    return rec.run_id


# -- recording ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, values",
    [
        ("evaluate", {"model": "file:/tmp/m.pt", "limit": 7, "device": "cpu"}),
        ("sweep", {"attacks": ["fgsm", "pgd"], "epsilons": [0, 0.1], "n_images": 10, "seed": 3}),
        ("gan", {"arch": "gan", "steps": 5, "lr_g": 1e-3, "checkpoint_path": "/tmp/c.pt"}),
    ],
)
def test_config_round_trips_through_the_store(store, kind, values):
    config = build_config(kind, values)
    with store.record(kind, config_to_dict(config), device="cpu") as rec:
        pass
    again_kind, again = store.rerun_config(rec.run_id)
    assert again_kind == kind and build_config(again_kind, again) == config


def test_a_finished_run_keeps_metrics_log_result_and_meta(store):
    with store.record("evaluate", {"model": "digits-cnn"}, device="cpu", seed=4) as rec:
        for step in range(3):
            rec.log_event(Metrics(step, {"accuracy": step / 4, "loss": 1.0 - step / 4}))
            rec.log_event(Progress(step, 3))
        rec.log_event(Log("half way"))
        rec.finish({"accuracy": 0.5, "n": 3, "confusion": [[1, 0], [0, 2]]})
    info = store.get(rec.run_id)
    assert info.status is RunStatus.FINISHED and info.kind == "evaluate"
    assert info.title == "evaluate digits-cnn" and info.device == "cpu" and info.seed == 4
    assert info.finished >= info.created and info.duration >= 0
    assert info.summary == {"accuracy": 0.5, "loss": 0.5, "n": 3}  # last metrics + result scalars
    assert set(info.versions) == {"python", "torch", "torchvision", "advstudio", "platform"}
    assert info.versions["torch"] and info.versions["advstudio"]
    assert store.read_metrics(rec.run_id) == [
        {"step": 0, "accuracy": 0.0, "loss": 1.0},
        {"step": 1, "accuracy": 0.25, "loss": 0.75},
        {"step": 2, "accuracy": 0.5, "loss": 0.5},
    ]
    assert "half way" in store.read_log(rec.run_id)
    assert store.read_result(rec.run_id)["confusion"] == [[1, 0], [0, 2]]
    assert store.list_runs() == [info]
    meta = json.loads((info.path / "meta.json").read_text())
    assert meta["owner"]["pid"] == os.getpid() and meta["status"] == "finished"
    assert json.loads((info.path / "config.json").read_text())["kind"] == "evaluate"


def test_unusual_metric_values_are_kept_as_plain_json(store):
    with store.record("evaluate", {}) as rec:
        rec.log_event(
            Metrics(
                0,
                {
                    "loss": float("nan"),
                    "acc": np.float32(0.5),
                    "n": np.int64(3),
                    "t": torch.tensor(0.25),
                },
            )
        )
    [row] = store.read_metrics(rec.run_id)
    assert row == {"step": 0, "loss": None, "acc": 0.5, "n": 3, "t": 0.25}  # JSON has no NaN


def test_metrics_are_buffered_and_flushed_by_time(store, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(
        recorder_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    )
    with store.record("evaluate", {}) as rec:
        for step in range(3):
            rec.log_event(Metrics(step, {"x": float(step)}))
        assert store.read_metrics(rec.run_id) == []  # still in memory
        clock[0] += recorder_module.FLUSH_INTERVAL
        rec.log_event(Metrics(3, {"x": 3.0}))
        assert [r["step"] for r in store.read_metrics(rec.run_id)] == [0, 1, 2, 3]
        rec.log_event(Metrics(4, {"x": 4.0}))
        assert len(store.read_metrics(rec.run_id)) == 4
    assert len(store.read_metrics(rec.run_id)) == 5  # the end flushes the rest


def test_artifacts_checkpoint_and_export(store, tmp_path):
    run_id = _record(store, metrics=[{"x": 1.0}])
    assert not store.resumable(run_id)
    assert store.artifacts(run_id) == []
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01" * 1000)
    store.add_artifact(run_id, CHECKPOINT, source)
    store.add_artifact(run_id, "samples/grid.png", b"png bytes")
    assert store.resumable(run_id)
    assert store.artifacts(run_id) == [CHECKPOINT, "samples/grid.png"]
    assert (store.get(run_id).path / "artifacts" / CHECKPOINT).read_bytes() == source.read_bytes()
    for bad in ("../escape.txt", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            store.add_artifact(run_id, bad, b"x")

    exports = tmp_path / "exports"
    exports.mkdir()
    zipped = store.export(run_id, exports)
    assert zipped == exports / f"{run_id}.zip"
    with zipfile.ZipFile(zipped) as zf:
        names = set(zf.namelist())
        assert {
            f"{run_id}/meta.json",
            f"{run_id}/config.json",
            f"{run_id}/metrics.jsonl",
            f"{run_id}/artifacts/samples/grid.png",
        } <= names
        assert zf.read(f"{run_id}/artifacts/{CHECKPOINT}") == source.read_bytes()
    folder = store.export(run_id, tmp_path / "copy", as_zip=False)
    assert (folder / "artifacts" / "samples" / "grid.png").read_bytes() == b"png bytes"
    assert json.loads((folder / "meta.json").read_text())["id"] == run_id
    assert store.export(run_id, folder, as_zip=False) == folder / run_id  # into a folder
    with pytest.raises(FileExistsError):
        store.export(run_id, folder, as_zip=False)
    assert store.export(run_id, zipped) == zipped  # a zip is replaced


def test_delete_and_unknown_ids(store):
    keep, gone = _record(store), _record(store)
    store.delete(gone)
    assert [r.id for r in store.list_runs()] == [keep]
    assert not (store.runs_dir / gone).exists()
    with pytest.raises(RunNotFoundError):
        store.get(gone)
    with pytest.raises(RunNotFoundError):
        store.read_metrics("../../etc")
    with store.record("evaluate", {}) as rec:
        with pytest.raises(RunStoreError, match="still running"):
            store.delete(rec.run_id)


# -- statuses ----------------------------------------------------------------------------------
def test_an_exception_records_failed_with_the_message(store):
    with pytest.raises(ValueError, match="boom"):
        with store.record("evaluate", {}) as rec:
            rec.log_event(Metrics(0, {"x": 1.0}))
            raise ValueError("boom")
    info = store.get(rec.run_id)
    assert info.status is RunStatus.FAILED and info.error == "ValueError: boom"
    assert "Traceback" in (info.path / "error.txt").read_text()
    assert info.summary == {"x": 1.0} and store.read_metrics(rec.run_id) == [{"step": 0, "x": 1.0}]
    assert store.list_runs(status="failed") == [info]


def test_ctrl_c_records_cancelled(store):
    with pytest.raises(KeyboardInterrupt):
        with store.record("evaluate", {}) as rec:
            raise KeyboardInterrupt
    assert store.get(rec.run_id).status is RunStatus.CANCELLED
    assert "Ctrl+C" in store.get(rec.run_id).error


def test_closing_the_job_generator_records_cancelled(store):
    def job():
        with store.record("fake", {"steps": 100}) as rec:
            ids.append(rec.run_id)
            for step in range(100):
                event = Metrics(step, {"x": float(step)})
                rec.log_event(event)
                yield event

    ids = []
    gen = job()
    for _ in range(3):
        next(gen)
    gen.close()  # what the worker's cancel does
    info = store.get(ids[0])
    assert info.status is RunStatus.CANCELLED and info.finished is not None
    assert [r["step"] for r in store.read_metrics(ids[0])] == [0, 1, 2]


def test_a_run_ends_once(store):
    with store.record("evaluate", {}) as rec:
        rec.finish({"n": 1})
        with pytest.raises(RunStoreError, match="already ended"):
            rec.finish({"n": 2})
        with pytest.raises(RunStoreError):
            rec.log_event(Metrics(0, {"x": 1.0}))
    assert store.get(rec.run_id).summary == {"n": 1}


# -- crash consistency -------------------------------------------------------------------------
def _child(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_crashed_run_is_interrupted_and_the_index_can_be_rebuilt(tmp_path):
    root = tmp_path / "store"
    finished = _record(RunStore.open(root), metrics=[{"x": 1.0}])
    child = _child(f"""
        import os
        from advstudio.core.jobs import Metrics
        from advstudio.core.runs import RunStore
        store = RunStore.open({str(root)!r})
        rec = store.record("gan", {{"steps": 1000}}, device="cpu", seed=1)
        print(rec.run_id, flush=True)
        for step in range(50):
            rec.log_event(Metrics(step, {{"loss": step / 10}}))
        rec.flush()
        with open(rec.path / "metrics.jsonl", "a") as f:   # a write cut short by the crash
            f.write('{{"step": 50, "lo')
        os._exit(1)
    """)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1
    run_id = out.strip()

    store = RunStore.open(root)
    info = store.get(run_id)
    assert info.status is RunStatus.INTERRUPTED and f"pid {child.pid}" in info.error
    assert info.finished is not None and info.summary == {"loss": 4.9}
    assert store.read_metrics(run_id) == [{"step": s, "loss": s / 10} for s in range(50)]
    listed = store.list_runs()
    assert [r.id for r in listed] == [run_id, finished]
    assert listed[0] == info and store.list_runs(status="interrupted") == [info]
    assert store.recover() == []  # nothing left to do

    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.index.path}{suffix}").unlink(missing_ok=True)
    fresh = RunStore(root)
    assert fresh.list_runs() == []  # a new, empty index...
    assert fresh.rebuild_index() == 2  # ...filled from the folders
    assert fresh.list_runs() == listed

    store.index.path.write_bytes(b"this is not an SQLite database" * 100)
    assert RunStore(root).list_runs() == listed  # a corrupt index is rebuilt, not fatal
    with sqlite3.connect(store.index.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_in_the_middle_of_writing_metrics(tmp_path):
    root = tmp_path / "store"
    child = _child(f"""
        import itertools
        from advstudio.core.jobs import Metrics
        from advstudio.core.runs import RunStore, recorder
        recorder.FLUSH_INTERVAL = 0.0   # write every line: the kill lands mid-stream
        rec = RunStore.open({str(root)!r}).record("evaluate", {{}})
        for step in itertools.count():
            rec.log_event(Metrics(step, {{"x": step * 0.5, "pad": "x" * (step % 97)}}))
            if step == 200:
                print(rec.run_id, flush=True)
    """)
    run_id = child.stdout.readline().strip()
    metrics = RunStore(root).run_path(run_id) / "metrics.jsonl"
    deadline = time.monotonic() + 30
    while metrics.stat().st_size < 200_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)

    store = RunStore.open(root)
    assert store.get(run_id).status is RunStatus.INTERRUPTED
    rows = store.read_metrics(run_id)
    assert len(rows) > 200
    assert [r["step"] for r in rows] == list(range(len(rows)))  # complete lines, none skipped
    assert all(r["x"] == r["step"] * 0.5 and len(r["pad"]) == r["step"] % 97 for r in rows)


def test_a_live_owner_keeps_its_run_running(tmp_path):
    root = tmp_path / "store"
    with RunStore.open(root).record("evaluate", {}) as rec:
        assert RunStore.open(root).get(rec.run_id).status is RunStatus.RUNNING
    me = Owner.current()
    assert me.alive()
    assert not Owner(me.pid, me.token + "-another-process", me.host).alive()  # pid reused
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not Owner(int(done.stdout), "", me.host).alive()
    assert Owner(1, "", "some-other-host").alive()  # cannot check: never interrupt it


def test_recover_resyncs_the_index_and_removes_leftovers(store):
    run_id = _record(store, metrics=[{"x": 2.0}])
    meta = json.loads((store.run_path(run_id) / "meta.json").read_text())
    store.index.put({**meta, "status": "running"}, {})  # as if it crashed before its last row
    ghost = "20200101-000000-evaluate-00000000"
    store.index.put({**meta, "id": ghost}, {})  # a row whose folder was removed by hand
    trash = store.runs_dir / f".trash-{ghost}"  # a delete cut short
    (trash / "artifacts").mkdir(parents=True)
    assert store.recover() == []
    assert [(r.id, r.status) for r in store.list_runs()] == [(run_id, RunStatus.FINISHED)]
    assert not trash.exists()


# -- history queries ---------------------------------------------------------------------------
def test_filter_by_kind_status_date_and_text(store):
    a = _record(store, "evaluate", {"model": "digits-cnn"})
    b = _record(
        store, "sweep", {"model": "file:/zoo/ResNet18.pt", "attacks": ["pgd"]}, status="failed"
    )
    time.sleep(0.01)
    middle = time.time()
    time.sleep(0.01)
    c = _record(store, "gan", {"arch": "dcgan", "dataset": "digits"}, status="cancelled")

    def ids(**filters):
        return [r.id for r in store.list_runs(**filters)]

    assert ids() == [c, b, a]
    assert ids(kind="sweep") == [b] and ids(kind=["gan", "evaluate"]) == [c, a]
    assert ids(status="failed") == [b] and ids(status=("finished", "cancelled")) == [c, a]
    assert ids(status=RunStatus.CANCELLED) == [c]
    with pytest.raises(ValueError):
        ids(status="exploded")
    assert ids(since=middle) == [c] and ids(until=middle) == [b, a]
    assert ids(since=datetime.fromtimestamp(middle, UTC)) == [c]
    assert ids(since=date.today() - timedelta(days=1), until=date.today()) == [c, b, a]
    assert ids(since=date.today() + timedelta(days=1)) == []
    assert ids(text="resnet18") == [b]  # config, case-insensitive
    assert ids(text="SWEEP pgd") == [b] and ids(text="sweep fgsm") == []  # every word
    assert ids(text="boom") == [b]  # error message
    assert ids(text="dcgan") == [c]  # title
    assert ids(text=a) == [a]  # id
    assert ids(kind="evaluate", status="failed") == []
    assert ids(limit=2) == [c, b]


def test_default_store_root(monkeypatch, tmp_path):
    import advstudio.core.runs.paths as paths

    assert default_store_root() == tmp_path / "home"  # the ADVSTUDIO_HOME of the fixture
    monkeypatch.delenv("ADVSTUDIO_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(paths.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_root() == tmp_path / "xdg" / "advstudio"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_store_root() == tmp_path / ".local" / "share" / "advstudio"
    monkeypatch.setattr(paths.sys, "platform", "darwin")
    assert default_store_root() == tmp_path / "Library" / "Application Support" / "advstudio"
    monkeypatch.setattr(paths.sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert default_store_root() == tmp_path / "Roaming" / "advstudio"


# -- the CLI records every run -----------------------------------------------------------------
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cli_records_an_evaluate_run(tmp_path, capsys):
    cfg = _write(tmp_path, "e.toml", 'kind = "evaluate"\nlimit = 200\nbatch_size = 50\n')
    root = tmp_path / "store"
    assert (
        main(
            [
                str(cfg),
                "--quiet",
                "--device",
                "cpu",
                "--store",
                str(root),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == EXIT_OK
    )
    printed = json.loads(capsys.readouterr().out)
    store = RunStore.open(root)
    [info] = store.list_runs()
    assert printed["run_id"] == info.id
    assert info.status is RunStatus.FINISHED and info.kind == "evaluate" and info.device == "cpu"
    assert info.summary["accuracy"] == printed["result"]["accuracy"] and info.summary["n"] == 200
    metrics = store.read_metrics(info.id)
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]
    assert metrics[-1]["accuracy"] == printed["result"]["accuracy"]
    out_lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in out_lines] == metrics  # --out works as before
    kind, values = store.rerun_config(info.id)
    assert build_config(kind, values) == build_config(
        "evaluate", {"limit": 200, "batch_size": 50, "device": "cpu"}
    )
    assert store.read_result(info.id) == printed["result"]


def test_cli_records_a_failed_run_with_its_message(tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")  # found, so recorded; unusable, so it fails
    cfg = _write(tmp_path, "f.toml", f'kind = "evaluate"\nmodel = "file:{tmp_path}/empty.pt"\n')
    root = tmp_path / "store"
    assert main([str(cfg), "--quiet", "--store", str(root)]) == EXIT_USAGE  # the config's model
    [info] = RunStore.open(root).list_runs()
    assert info.status is RunStatus.FAILED and info.error.startswith("model file is empty")
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("advstudio-run: bad config: model file is empty")
    assert info.id in err[-2] and "failed" in err[-2]


def test_cli_no_record_and_default_store(tmp_path, capsys):
    cfg = _write(tmp_path, "e.toml", 'kind = "evaluate"\n')
    home = tmp_path / "home"  # ADVSTUDIO_HOME
    assert main([str(cfg), "--dry-run", "--quiet", "--no-record"]) == EXIT_OK
    assert "run_id" not in json.loads(capsys.readouterr().out)
    assert not home.exists()  # --no-record does not even create the store
    assert main([str(cfg), "--dry-run", "--quiet"]) == EXIT_OK
    [info] = RunStore.open(home).list_runs()
    assert info.id == json.loads(capsys.readouterr().out)["run_id"]


def test_cli_unusable_store_is_a_usage_error(tmp_path, capsys):
    cfg = _write(tmp_path, "e.toml", 'kind = "evaluate"\n')
    blocker = _write(tmp_path, "afile", "not a folder")
    assert main([str(cfg), "--dry-run", "--quiet", "--store", str(blocker / "x")]) == EXIT_USAGE
    assert "--no-record" in capsys.readouterr().err


@dataclass(frozen=True)
class _FakeConfig:
    steps: int = 5
    device: str = "cpu"


def _interrupted_job(config):
    for step in range(config.steps):
        yield Metrics(step, {"x": float(step)})
        if step == 2:
            raise KeyboardInterrupt


def test_cli_ctrl_c_records_cancelled(store):
    assert (
        run_job("fake", _FakeConfig(), _interrupted_job, None, quiet=True, store=store)
        == EXIT_INTERRUPTED
    )
    [info] = store.list_runs()
    assert info.status is RunStatus.CANCELLED and info.device == "cpu"
    assert [m["step"] for m in store.read_metrics(info.id)] == [0, 1, 2]


def test_cli_same_seed_same_recorded_metrics(tmp_path, capsys):
    cfg = _write(
        tmp_path,
        "s.toml",
        'kind = "sweep"\nattacks = ["fgsm"]\nepsilons = [0.1]\n'
        'n_images = 20\nbatch_size = 20\ndevice = "cpu"\n',
    )
    root = tmp_path / "store"
    for _ in range(2):
        assert main([str(cfg), "--quiet", "--seed", "3", "--store", str(root)]) == EXIT_OK
    store = RunStore.open(root)
    second, first = store.list_runs()
    assert first.seed == second.seed == 3
    assert store.read_metrics(first.id) and store.read_metrics(first.id) == store.read_metrics(
        second.id
    )
    assert first.summary == second.summary


def test_the_last_image_of_each_preview_is_kept_as_an_artifact(store):
    from PIL import Image

    from advstudio.core.images import pixels_to_uint8
    from advstudio.core.jobs import Preview

    rng = np.random.default_rng(0)
    first, last = rng.random((16, 24, 1), np.float32), rng.random((16, 24, 1), np.float32)
    rec = store.record("gan", {"steps": 2})
    rec.log_event(Preview("samples", first))
    rec.log_event(Preview("samples", last))
    rec.log_event(Preview("curve", {"x": [1, 2]}))  # not images: not kept
    rec.log_event(Preview("gallery", rng.random((5, 1, 28, 28), np.float32)))
    rec.log_event(Preview("labels", np.arange(100).reshape(10, 10)))
    rec.log_event(Preview("../escape", last))  # a name that is not a plain file name
    rec.finish()
    assert store.artifacts(rec.run_id) == ["samples.png"]
    saved = np.asarray(Image.open(store.run_path(rec.run_id) / "artifacts" / "samples.png"))
    np.testing.assert_array_equal(saved, pixels_to_uint8(last)[..., 0])


def test_a_cancelled_run_keeps_its_last_preview_image(store):
    from advstudio.core.jobs import Preview

    colour = np.full((10, 10, 3), 0.5, np.float32)
    with pytest.raises(GeneratorExit):
        with store.record("gan", {}) as rec:
            rec.log_event(Preview("samples", colour))
            raise GeneratorExit
    assert store.get(rec.run_id).status == RunStatus.CANCELLED
    assert store.artifacts(rec.run_id) == ["samples.png"]


def test_the_recorder_does_not_import_the_store():
    """The store builds recorders; a recorder only needs what ``RunFolders`` names."""
    import ast

    tree = ast.parse(Path(recorder_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "advstudio.core.runs.store" not in imported
    assert "advstudio.core.runs.info" in imported  # the check sees the module's imports
