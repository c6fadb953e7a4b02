"""Atomic file writes: checkpoints, trained weights and run records never appear half-written.

A whole file is written to a hidden temporary sibling (same folder, so the rename stays on one
disk), flushed to disk (``fsync``) and moved over the target with ``os.replace``, which is atomic
on POSIX and Windows: a reader sees the old file or the new one, and a crash or cancel leaves at
most the temporary file, whose leading dot keeps it out of listings. One naming scheme and one
implementation serve the run store (bytes, copies) and the trainers (``torch.save``); torch is
imported only by :func:`atomic_torch_save`, so the run store can be read without it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


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


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any],
                 sync_dir: bool = True) -> Path:
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
    except BaseException:
        tmp.unlink(missing_ok=True)
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
