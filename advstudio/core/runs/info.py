"""What the store knows about one run: its status and the row shown in the history."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from advstudio.core.errors import AdvStudioError


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped on purpose (Cancel button, Ctrl+C)
    INTERRUPTED = "interrupted"  # its process died (crash, kill, power loss)


class RunNotFoundError(AdvStudioError, LookupError):
    """No run with this id in the store."""


class RunStoreError(AdvStudioError, OSError):
    """The store refused or failed an operation (e.g. deleting a run that is still running)."""


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class RunInfo:
    """One run, as read from its ``meta.json`` (times are timezone-aware, UTC).

    ``summary`` holds the final scalar metrics (the last value of each metric, and the scalar
    fields of the result); ``error`` the one-line message of a failed, cancelled or interrupted
    run; ``versions`` the software it ran with.
    """

    id: str
    kind: str
    status: RunStatus
    title: str
    created: datetime
    finished: datetime | None
    device: str
    seed: int | None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    path: Path = Path()

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        return None if self.finished is None else (self.finished - self.created).total_seconds()

    @classmethod
    def from_meta(cls, meta: dict[str, Any], path: Path) -> RunInfo:
        return cls(
            id=meta["id"],
            kind=meta["kind"],
            status=RunStatus(meta["status"]),
            title=meta.get("title", ""),
            created=_time(meta["created"]),
            finished=_time(meta.get("finished")),
            device=meta.get("device", ""),
            seed=meta.get("seed"),
            summary=meta.get("summary", {}),
            error=meta.get("error", ""),
            versions=meta.get("versions", {}),
            path=path,
        )
