"""The SQLite index of the run store: one row per run, so the history is searchable quickly.

The run folders are the truth; the index is a cache of their ``meta.json`` that can always be
rebuilt from them. It runs in WAL mode so that the app can list runs while a CLI process records
one. Each thread gets its own connection (the store is used from the UI thread and from job
threads, and an sqlite3 connection belongs to one thread), kept open: closing the last
connection checkpoints the WAL, which would cost tens of milliseconds on every call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time as time_module
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from advstudio.core.runs.info import RunStatus


@contextmanager
def _creation_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<index>.lock`` between processes, where the system has ``flock``
    and the folder is writable (elsewhere nothing: the retries of ``ensure`` remain)."""
    try:
        import fcntl

        handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held below
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    device TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,   -- JSON: final scalar metrics
    search TEXT NOT NULL,    -- lower-case id, kind, title, config and error, for text filters
    meta TEXT NOT NULL       -- the whole meta.json
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
"""

TimeBound = datetime | date | float | int


def _timestamp(value: TimeBound, end_of_day: bool = False) -> float:
    """Seconds since the epoch; naive datetimes and dates are local time, a ``date`` as an upper
    bound means the end of that day."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime.combine(value, time.max if end_of_day else time.min).timestamp()
    return float(value)


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class RunIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._generation = 0  # bumped when the files are destroyed: threads then reconnect

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, committed after the block (rolled back on an error)."""
        con = getattr(self._local, "con", None)
        if con is None or self._local.generation != self._generation:
            self.close()
            con = sqlite3.connect(self.path, timeout=30)
            con.execute("PRAGMA synchronous = NORMAL")  # the index can be rebuilt: no full sync
            self._local.con, self._local.generation = con, self._generation
        try:
            yield con
            con.commit()
        except BaseException:
            con.rollback()
            raise

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's data is freed)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            self._local.con = None
            con.close()

    def ensure(self) -> None:
        """Create the table if needed; raise ``sqlite3.DatabaseError`` for a corrupt file or an
        index of another schema version.

        Several processes may open a new store at once (jobs started together, ranks of a
        cluster on a shared store): they take turns through a lock file, and a "database is
        locked" from SQLite (switching to WAL can be refused without waiting) is retried for
        up to 10 s rather than raised."""
        with _creation_lock(self.path):
            for attempt in range(100):
                try:
                    self._ensure()
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 99:
                        raise
                    self.close()
                    time_module.sleep(0.1)

    def _ensure(self) -> None:
        if not self.path.exists():
            self.destroy()  # a WAL left beside a deleted index must not be replayed into a new one
        with self.connect() as con:
            con.execute("PRAGMA journal_mode = WAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"run index has schema {version}, expected {SCHEMA_VERSION}"
                )
            con.executescript(_SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def destroy(self) -> None:
        """Remove the index files (a corrupt index); the next :meth:`ensure` starts afresh."""
        self.close()
        self._generation += 1
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    @staticmethod
    def _row(meta: dict[str, Any], config: dict[str, Any]) -> tuple:
        search = " ".join(
            [
                meta["id"],
                meta["kind"],
                meta.get("title", ""),
                json.dumps(config, sort_keys=True),
                meta.get("error", ""),
            ]
        ).lower()
        return (
            meta["id"],
            meta["kind"],
            meta["status"],
            meta["created"],
            meta.get("finished"),
            meta.get("device", ""),
            meta.get("title", ""),
            json.dumps(meta.get("summary", {})),
            search,
            json.dumps(meta),
        )

    def put(self, meta: dict[str, Any], config: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)", self._row(meta, config)
            )

    def replace_all(self, runs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Make the index hold exactly ``runs`` ((meta, config) pairs), in one transaction."""
        with self.connect() as con:
            con.execute("DELETE FROM runs")
            con.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (self._row(meta, config) for meta, config in runs),
            )

    def remove(self, run_id: str) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def statuses(self) -> dict[str, str]:
        """id -> status of every indexed run."""
        with self.connect() as con:
            return dict(con.execute("SELECT id, status FROM runs"))

    def query(
        self,
        kind: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Meta dicts of the matching runs, newest first. ``text``: every word must occur
        (case-insensitive) in the id, kind, title, config or error message."""
        where, params = [], []
        if kind is not None:
            kinds = _names(kind)
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params += kinds
        if status is not None:
            statuses = [RunStatus(s).value for s in _names(status)]
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if since is not None:
            where.append("created >= ?")
            params.append(_timestamp(since))
        if until is not None:
            where.append("created <= ?")
            params.append(_timestamp(until, end_of_day=True))
        for word in (text or "").lower().split():
            where.append("instr(search, ?) > 0")
            params.append(word)
        sql = "SELECT meta FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.connect() as con:
            return [json.loads(meta) for (meta,) in con.execute(sql, params)]
