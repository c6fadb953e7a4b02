"""Job configs as files for ``advstudio-run``: the "Export as config" of the app and the Runs tab.

A config file is flat: ``kind = "gan"`` followed by the config's fields, as TOML (the form people
edit) or JSON. The standard library reads TOML (``tomllib``) but cannot write it, and our values
are only strings, numbers, booleans and lists of them, so the few lines that write them live here
rather than in a new dependency.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from advstudio.core.errors import ConfigError
from advstudio.core.atomic import atomic_write_bytes


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    raise ConfigError(f"{key}: cannot write {type(value).__name__} {value!r} to a config file")


def to_toml(kind: str, values: dict[str, Any], comment: str = "") -> str:
    """``kind = "..."`` then one ``key = value`` line per field; ``None`` values are left out
    (the job's default applies), with a comment saying so."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines.append(f"kind = {json.dumps(kind)}")
    for key, value in values.items():
        if value is None:
            lines.append(f"# {key} = (none: the default)")
        else:
            lines.append(f"{key} = {_toml_value(key, value)}")
    return "\n".join(lines) + "\n"


def write_config(path: Path | str, kind: str, values: dict[str, Any], comment: str = "") -> Path:
    """Write a config file for ``advstudio-run``: TOML for ``.toml``, JSON for ``.json``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        text = to_toml(kind, values, comment)
    elif suffix == ".json":
        text = json.dumps({"kind": kind, **values}, indent=2, ensure_ascii=False) + "\n"
    else:
        raise ConfigError(f"a config file must end in .toml or .json, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
