"""JSON for the run store: the one way a result, config or metric becomes plain JSON, written
atomically (see :mod:`advstudio.core.atomic`), and tolerant reads.

A reader must never see a half-written ``meta.json``, so whole files are replaced atomically.
Append-only streams (``metrics.jsonl``) cannot be replaced on every line; their reader instead
ignores a last line cut short by a crash.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advstudio.core.atomic import atomic_write_bytes


def is_state_dict(value: Any) -> bool:
    """True for a mapping of names to tensors, not all of them scalars (a model's
    ``state_dict``; a dict of scalar tensors is a dict of numbers)."""
    if not isinstance(value, Mapping) or not value:
        return False
    tensors = value.values()
    return all(
        type(v).__module__.startswith("torch") and hasattr(v, "ndim") for v in tensors
    ) and any(v.ndim > 0 for v in tensors)


def plain(value: Any, files: Mapping[int, str] | None = None) -> Any:
    """``value`` as plain JSON types, the same for the run store, ``--out`` and the summary.

    Dataclasses and mappings -> dicts, tuples -> lists, paths -> strings, numpy and torch
    scalars -> numbers, NaN and infinities -> null (JSON has neither). A state_dict becomes the
    name of the file its weights were saved to, ``files[id(state_dict)]``, or null: weights
    belong in a file, not in JSON (see :func:`advstudio.core.runs.models.keep_models`). Other
    arrays and objects -> ``"<TypeName>"``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name), files) for f in dataclasses.fields(value)}
    if is_state_dict(value) or (getattr(value, "ndim", 0) > 0 and id(value) in (files or {})):
        return (files or {}).get(id(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v, files) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, files) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy / torch scalar
        return plain(value.item())
    return f"<{type(value).__name__}>"


def metrics_line(step: int, values: Mapping[str, Any]) -> str:
    """One record of a ``metrics.jsonl`` stream (the run store's and ``advstudio-run --out``'s)."""
    return json.dumps(plain({"step": step, **values}), allow_nan=False)


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
