"""Job configs as files for ``advstudio-run``: the "Export as config" of the app and the Runs tab.

A config file is flat: ``kind = "gan"`` followed by the config's fields, as TOML (the form people
edit, written with ``tomli_w`` and read back with the standard library's ``tomllib``) or JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w

from advstudio.core.atomic import atomic_write_bytes
from advstudio.core.errors import ConfigError


def to_toml(kind: str, values: dict[str, Any], comment: str = "") -> str:
    """``# comment`` lines, ``kind = "..."``, then one ``key = value`` line per field; ``None``
    values are left out (TOML has no null: the job's default applies)."""
    table = {"kind": kind, **{k: v for k, v in values.items() if v is not None}}
    try:
        body = tomli_w.dumps(table)
    except TypeError as exc:
        raise ConfigError(f"cannot write this config to a TOML file: {exc}") from exc
    return "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines()) + body


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
