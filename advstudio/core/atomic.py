"""Atomic file writes: checkpoints, trained weights and run records never appear half-written.

A whole file is written to a hidden temporary sibling (same folder, so the rename stays on one
disk), flushed to disk (``fsync``) and moved over the target with ``os.replace``, which is atomic
on POSIX and Windows: a reader sees the old file or the new one, and a crash or cancel leaves at
most the temporary file, whose leading dot keeps it out of listings. One naming scheme and one
implementation serve the run store (bytes, copies) and the trainers (``torch.save``); torch is
imported only by :func:`atomic_torch_save`, so the run store can be read without it.

A failed write is translated once, here, into a sentence the user can act on
(:func:`write_fault`): torch reports a full disk as ``[enforce fail at inline_container.cc]
unexpected pos``, SQLite as ``database or disk is full``. Temporary names carry the writer's pid,
so :func:`clean_orphans` can remove those of processes that died mid-write (a kill, a crash).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from advstudio.core.errors import AdvStudioError, DiskFullError, ReadOnlyError

_TEMP_NAME = re.compile(r"\..+\.(\d+)-[0-9a-f]{8}\.tmp")  # what temp_sibling makes
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
# how libraries word a full disk without an errno: torch's zip writer, SQLite, the C library
_DISK_FULL_TEXTS = (
    "unexpected pos",
    "file write failed",
    "database or disk is full",
    "no space left",
)
_READ_ONLY_TEXTS = ("readonly database", "read-only file system")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX; Windows has no directory fsync)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], Any], sync_dir: bool = True
) -> Path:
    """Call ``write(f)`` on a temporary sibling of ``path``, then move it over ``path``.

    ``sync_dir=False`` leaves the rename's durability to a later :func:`fsync_dir` of the folder
    (one for several files). Returns ``path``."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        # a fresh name opened with "xb": the file gets the usual permissions (umask), unlike mkstemp
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        fault = write_fault(exc, path.parent)
        if fault is not None:
            raise fault from exc
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync_dir: bool = True) -> Path:
    return atomic_write(path, lambda f: f.write(data), sync_dir)


def atomic_copy(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Copy the file ``source`` to ``path`` (checkpoints can be large: streamed)."""
    with open(source, "rb") as src:
        return atomic_write(path, lambda dst: shutil.copyfileobj(src, dst, 1 << 20))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, creating its folder if needed."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: torch.save(obj, f))


def write_fault(exc: BaseException, folder: str | os.PathLike) -> OSError | None:
    """The clear error for a write into ``folder`` that failed with ``exc``: a
    :class:`DiskFullError` or a :class:`ReadOnlyError`, or None for any other failure (which
    keeps its own message). Our own errors are never translated twice."""
    if isinstance(exc, AdvStudioError):
        return None
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc).lower()
    if code in _DISK_FULL_ERRNOS or any(t in text for t in _DISK_FULL_TEXTS):
        return DiskFullError(f"the disk is full ({folder}): free space or choose another folder")
    if code in _READ_ONLY_ERRNOS or any(t in text for t in _READ_ONLY_TEXTS):
        return ReadOnlyError(
            f"{folder} cannot be written (a read-only disk or folder, or no "
            "permission): choose another folder"
        )
    return None


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (POSIX); on Windows assume it does (never delete a
    file another process may be writing)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def clean_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files under ``folder`` (recursively) that :func:`atomic_write` left
    when its process died mid-write; returns what was removed. Files of live processes stay."""
    removed = []
    for parent, _, names in os.walk(folder):
        for name in names:
            found = _TEMP_NAME.fullmatch(name)
            if found and not _pid_alive(int(found.group(1))):
                path = Path(parent) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
