"""Crash-safe file writes and tolerant reads for the run store.

A reader must never see a half-written ``meta.json`` or artifact, so whole files are written to a
temporary sibling, flushed to disk (``fsync``) and moved over the target with ``os.replace``, which
is atomic on POSIX and Windows. Append-only streams (``metrics.jsonl``) cannot be replaced on every
line; their reader instead ignores a last line cut short by a crash.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any


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
    """A unique name beside ``path`` (same folder, so the final rename stays on one disk)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    ``sync_dir=False`` leaves the rename's durability to a later ``fsync_dir`` of the folder
    (one for several files)."""
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_copy(source: Path, path: Path) -> None:
    """Copy the file ``source`` to ``path`` atomically (checkpoints can be large: streamed)."""
    tmp = temp_sibling(path)
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def plain(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses and mappings -> dicts, tuples -> lists, numpy
    and torch scalars -> numbers; anything else (tensors, state dicts) -> ``"<TypeName>"``."""
    import dataclasses

    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy / torch scalar
        return value.item()
    return f"<{type(value).__name__}>"


def atomic_write_json(path: Path, value: Any, sync_dir: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(plain(value), indent=1) + "\n").encode(), sync_dir)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete records of an append-only JSON-lines file.

    A writer killed mid-line leaves a last line without its newline: it is ignored. So is any
    line that is not a JSON object (it cannot come from our writer, but history must stay
    readable). A missing file reads as no records.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    records = []
    for line in lines[:-1]:  # the part after the last newline is empty or a torn write
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
