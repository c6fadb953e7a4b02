"""The run store: every run's config, metrics, log and artifacts on disk, and a searchable index.

Layout under ``root`` (see :func:`default_store_root`)::

    index.sqlite              one row per run (WAL mode); a cache, rebuilt from the folders
    runs/<run_id>/
        config.json           {"kind": ..., "config": {...}}: enough to rerun it
        meta.json             status, times, device, seed, software versions, owner process
        metrics.jsonl         {"step": ..., <metric>: ...} per line, append-only
        log.txt               Log events
        result.json           the job's result (finished runs)
        error.txt             traceback of a failed run
        artifacts/            images, checkpoints (artifacts/checkpoint.pt), models

Whole files are replaced atomically, a new run's folder appears complete (it is prepared under a
hidden name and renamed), and the folders are the truth: if the process dies at any point, the
next :meth:`RunStore.open` finds a consistent store, with the dead process's runs ``interrupted``.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from advstudio.core.atomic import (
    atomic_copy,
    atomic_write_bytes,
    clean_orphans,
    fsync_dir,
    temp_sibling,
    write_fault,
)
from advstudio.core.runs.files import atomic_write_json, plain, read_json, read_jsonl
from advstudio.core.runs.index import RunIndex, TimeBound
from advstudio.core.runs.info import RunInfo, RunNotFoundError, RunStatus, RunStoreError
from advstudio.core.runs.owner import Owner
from advstudio.core.runs.paths import default_store_root
from advstudio.core.runs.recorder import Recorder, scalar_summary

CHECKPOINT = "checkpoint.pt"  # artifacts/checkpoint.pt makes a run resumable
_RUN_ID = re.compile(r"\d{8}-\d{6}-[a-z0-9_]+-[0-9a-f]{8}")
_STALE_STAGING_S = 3600  # a hidden ".new-" folder older than this was left by a crash
_STORED = {".png", ".jpg", ".jpeg", ".pt", ".pth", ".zip", ".gz", ".npz"}  # zip: no deflate


@functools.cache
def software_versions() -> dict[str, str]:
    """Versions that decide whether a run can be reproduced (read without importing torch)."""
    from importlib import metadata

    import advstudio

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "advstudio": advstudio.__version__,
        "platform": platform.platform(),
    }


def _default_title(kind: str, config: dict[str, Any]) -> str:
    parts = [kind] + [
        config[key]
        for key in ("model", "arch", "dataset")
        if isinstance(config.get(key), str) and config[key]
    ]
    return " ".join(parts)[:80]


def _is_lock(exc: sqlite3.DatabaseError) -> bool:
    """Busy/locked is another process at work, not corruption: never rebuild over it."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _not_corruption(exc: sqlite3.DatabaseError, folder: Path) -> BaseException | None:
    """The error to raise instead of rebuilding the index, or None if the index is corrupt.

    A lock is another process at work; a full disk or a read-only folder would make a rebuild
    fail the same way, after deleting the index: both leave the index alone and say so."""
    if _is_lock(exc):
        return exc
    return write_fault(exc, folder)


class RunStore:
    """Run history on disk. Safe to use from several threads and processes at once."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.index = RunIndex(self.root / "index.sqlite")
        try:
            self.index.ensure()
        except sqlite3.DatabaseError as exc:
            if (fault := _not_corruption(exc, self.root)) is not None:
                raise fault from exc
            self.rebuild_index()

    @classmethod
    def open(cls, root: Path | str | None = None) -> RunStore:
        """The store at ``root`` (default: :func:`default_store_root`), recovered after crashes."""
        store = cls(default_store_root() if root is None else root)
        store.recover()
        return store

    def close(self) -> None:
        """Close this thread's index connection (reopened if the store is used again)."""
        self.index.close()

    # -- recording -----------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        config: dict[str, Any],
        *,
        device: str = "",
        seed: int | None = None,
        title: str | None = None,
    ) -> Recorder:
        """Start recording a run of ``kind`` with plain ``config`` values (``config_to_dict``).

        Use as ``with store.record(...) as rec:``; the run exists (status ``running``) as soon
        as this returns.
        """
        config = plain(config)
        created = time.time()
        slug = re.sub(r"[^a-z0-9_]+", "_", kind.lower()).strip("_") or "run"
        run_id = (
            f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{slug}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        meta = {
            "id": run_id,
            "kind": kind,
            "title": title or _default_title(kind, config),
            "status": RunStatus.RUNNING.value,
            "created": created,
            "finished": None,
            "device": str(device),
            "seed": plain(seed),
            "error": "",
            "summary": {},
            "versions": dict(software_versions()),
            "owner": Owner.current().to_dict(),
        }
        staging = self.runs_dir / f".new-{run_id}"
        try:
            (staging / "artifacts").mkdir(parents=True)
            atomic_write_json(
                staging / "config.json", {"kind": kind, "config": config}, sync_dir=False
            )
            atomic_write_json(staging / "meta.json", meta, sync_dir=False)
            fsync_dir(staging)
            os.rename(staging, self.runs_dir / run_id)
        except OSError as exc:  # a full or read-only disk: no half-made run is left behind
            shutil.rmtree(staging, ignore_errors=True)
            raise (write_fault(exc, self.runs_dir) or exc) from exc
        try:
            fsync_dir(self.runs_dir)
            self._index_put(meta, config)
        except OSError:  # e.g. the index's disk is full: a run that cannot be listed is undone
            shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)
            raise
        return Recorder(self, meta, config)

    def _save(self, meta: dict[str, Any], config: dict[str, Any]) -> None:
        """Write a run's meta.json (the truth), then its index row."""
        atomic_write_json(self.run_path(meta["id"]) / "meta.json", meta)
        self._index_put(meta, config)

    def add_artifact(self, run_id: str, name: str, data: bytes | str | os.PathLike) -> Path:
        """Save ``data`` (bytes, or the path of a file to copy) as ``artifacts/<name>``,
        atomically; ``name`` may contain sub-folders (``samples/step_100.png``)."""
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts or Path(name).drive:
            raise ValueError(f"artifact name must be a relative path inside the run, not {name!r}")
        target = self.run_path(run_id) / "artifacts" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, (bytes, bytearray, memoryview)):
            atomic_write_bytes(target, bytes(data))
        else:
            atomic_copy(Path(data), target)
        return target

    # -- reading -------------------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        if not _RUN_ID.fullmatch(run_id):
            raise RunNotFoundError(f"{run_id!r} is not a run id")
        return self.runs_dir / run_id

    def _folder(self, run_id: str) -> Path:
        path = self.run_path(run_id)
        if not (path / "meta.json").is_file():
            raise RunNotFoundError(f"no run {run_id} in {self.root}")
        return path

    def _meta(self, run_id: str) -> dict[str, Any]:
        return read_json(self._folder(run_id) / "meta.json")

    def get(self, run_id: str) -> RunInfo:
        return RunInfo.from_meta(self._meta(run_id), self.run_path(run_id))

    def list_runs(
        self,
        kind: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs matching every given filter, newest first.

        ``kind``/``status``: one name or several. ``since``/``until``: bounds on the start time
        (datetime, date or epoch seconds; a date as ``until`` includes that whole day).
        ``text``: every word must occur, case-insensitively, in the id, title, kind, config or
        error message.
        """
        metas = self._with_index(lambda: self.index.query(kind, status, since, until, text, limit))
        return [RunInfo.from_meta(meta, self.run_path(meta["id"])) for meta in metas]

    def read_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Every complete metrics record (a line torn by a crash is left out)."""
        return read_jsonl(self._folder(run_id) / "metrics.jsonl")

    def read_log(self, run_id: str) -> str:
        path = self._folder(run_id) / "log.txt"
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    def read_result(self, run_id: str) -> Any:
        """The finished run's full result (``None`` for other runs)."""
        path = self._folder(run_id) / "result.json"
        return read_json(path) if path.is_file() else None

    def artifacts(self, run_id: str) -> list[str]:
        """Artifact names (``/``-separated), sorted."""
        folder = self._folder(run_id) / "artifacts"
        return sorted(p.relative_to(folder).as_posix() for p in self._files(folder))

    def resumable(self, run_id: str) -> bool:
        return (self._folder(run_id) / "artifacts" / CHECKPOINT).is_file()

    def rerun_config(self, run_id: str) -> tuple[str, dict[str, Any]]:
        """``(kind, config values)`` to run it again (``jobkinds.build_config(*...)``)."""
        data = read_json(self._folder(run_id) / "config.json")
        return data["kind"], data["config"]

    # -- managing ------------------------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """Remove a run and its files; a run that is still being recorded is refused."""
        meta = self._meta(run_id)
        if meta["status"] == RunStatus.RUNNING and Owner.from_dict(meta.get("owner", {})).alive():
            raise RunStoreError(f"run {run_id} is still running; cancel it before deleting it")
        trash = self.runs_dir / f".trash-{run_id}"
        os.rename(self.run_path(run_id), trash)  # gone from the listing in one step
        self._with_index(lambda: self.index.remove(run_id))
        shutil.rmtree(trash, ignore_errors=True)

    def export(self, run_id: str, dest: Path | str, as_zip: bool = True) -> Path:
        """Copy a run's folder to ``dest`` as a zip file (replaced if it exists) or a folder
        (which must not exist yet). If ``dest`` is an existing folder, the export goes inside it,
        named after the run. Returns the path written."""
        source, dest = self._folder(run_id), Path(dest)
        if dest.is_dir():
            dest = dest / (f"{run_id}.zip" if as_zip else run_id)
        if not as_zip and dest.exists():
            raise FileExistsError(f"{dest} already exists")
        tmp = temp_sibling(dest)
        try:
            if as_zip:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                    for path in self._files(source):
                        kind = zipfile.ZIP_STORED if path.suffix.lower() in _STORED else None
                        zf.write(
                            path,
                            f"{run_id}/{path.relative_to(source).as_posix()}",
                            compress_type=kind,
                        )
            else:
                tmp.mkdir()
                for path in self._files(source):
                    target = tmp / path.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            os.replace(tmp, dest)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise
        return dest

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        """The files of a run folder, without temporary files of an atomic write in progress,
        and without symbolic links: a link planted in a run folder could point anywhere (a
        key, a home folder), and an export must never carry files from outside the run."""
        files = []
        for parent, dirs, names in os.walk(folder):  # os.walk does not enter linked folders
            dirs[:] = [d for d in dirs if not (Path(parent) / d).is_symlink()]
            files += [
                Path(parent) / name
                for name in names
                if not name.startswith(".")
                and not (Path(parent) / name).is_symlink()
                and (Path(parent) / name).is_file()
            ]
        return sorted(files)

    # -- consistency ---------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Bring the index in line with the folders and mark the runs of dead processes
        ``interrupted``; returns their ids. Called by :meth:`open`."""
        self._clean_hidden()
        indexed = self._with_index(self.index.statuses)
        on_disk = set(self._run_ids())
        check = {
            run_id
            for run_id, status in indexed.items()
            if status == RunStatus.RUNNING and run_id in on_disk
        }
        for run_id in on_disk - set(indexed):  # its process died before indexing it
            loaded = self._load(run_id)
            if loaded is not None:
                self._index_put(*loaded)
                check.add(run_id)
        for run_id in set(indexed) - on_disk:  # deleted, or the folder was removed by hand
            self._with_index(lambda run_id=run_id: self.index.remove(run_id))
        interrupted = []
        for run_id in sorted(check):
            loaded = self._load(run_id)
            if loaded and loaded[0]["status"] == RunStatus.RUNNING:
                if Owner.from_dict(loaded[0].get("owner", {})).alive():
                    continue
                loaded = self._load(run_id)  # again: it may have ended just before its process
                if loaded and loaded[0]["status"] == RunStatus.RUNNING:
                    self._mark_interrupted(loaded[0])
                    self._save(*loaded)
                    interrupted.append(run_id)
                    continue
            if loaded:
                self._index_put(*loaded)  # a row that missed the run's last update
        return interrupted

    def _mark_interrupted(self, meta: dict[str, Any]) -> None:
        folder = self.run_path(meta["id"])
        last_values: dict[str, Any] = {}
        for record in read_jsonl(folder / "metrics.jsonl"):
            last_values.update(record)
        last_values.pop("step", None)
        # when it stopped: the last time it wrote anything
        finished = max(p.stat().st_mtime for p in folder.iterdir() if p.is_file())
        pid = meta.get("owner", {}).get("pid", "?")
        meta.update(
            status=RunStatus.INTERRUPTED.value,
            finished=max(finished, meta["created"]),
            summary=scalar_summary(last_values),
            error=f"the process that ran it (pid {pid}) ended before the run did: "
            "a crash, a kill or a power cut",
        )

    def rebuild_index(self) -> int:
        """Rebuild the index from the run folders (e.g. after it was lost or corrupted);
        returns the number of runs indexed."""
        runs = [loaded for run_id in self._run_ids() if (loaded := self._load(run_id))]
        try:
            self.index.ensure()
            self.index.replace_all(runs)
        except sqlite3.DatabaseError as exc:
            if (fault := _not_corruption(exc, self.root)) is not None:
                raise fault from exc
            self.index.destroy()
            self.index.ensure()
            self.index.replace_all(runs)
        return len(runs)

    def _run_ids(self) -> Iterator[str]:
        for entry in os.scandir(self.runs_dir):
            if entry.is_dir() and _RUN_ID.fullmatch(entry.name):
                yield entry.name

    def _load(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(meta, config) of a run folder, or None if it is unreadable (not one of ours)."""
        folder = self.run_path(run_id)
        try:
            meta = read_json(folder / "meta.json")
            config = read_json(folder / "config.json")["config"]
            RunInfo.from_meta(meta, folder)  # validates the fields the index needs
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta, config

    def _clean_hidden(self) -> None:
        """Remove what a crash can leave behind: half-deleted runs, stale staging folders, and
        the temporary files of atomic writes (checkpoints, records) whose process died."""
        clean_orphans(self.runs_dir)
        now = time.time()
        for entry in os.scandir(self.runs_dir):
            if entry.name.startswith(".trash-") or (
                entry.name.startswith(".new-") and now - entry.stat().st_mtime > _STALE_STAGING_S
            ):
                shutil.rmtree(entry.path, ignore_errors=True)

    def _index_put(self, meta: dict[str, Any], config: dict[str, Any]) -> None:
        self._with_index(lambda: self.index.put(meta, config))

    def _with_index(self, call):
        """``call()``; if the index turns out corrupt or missing, rebuild it and call again."""
        try:
            return call()
        except sqlite3.DatabaseError as exc:
            if (fault := _not_corruption(exc, self.root)) is not None:
                if fault is exc:
                    raise
                raise fault from exc
            self.rebuild_index()
            return call()
