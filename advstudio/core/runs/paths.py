"""Where the run store lives by default, without asking Qt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "advstudio"


def default_store_root() -> Path:
    """The user data folder of advstudio.

    ``$ADVSTUDIO_HOME`` when set (tests, portable installs); otherwise the platform's user data
    location: Linux ``$XDG_DATA_HOME/advstudio`` (``~/.local/share/advstudio``), macOS
    ``~/Library/Application Support/advstudio``, Windows ``%APPDATA%\\advstudio``.
    """
    home = os.environ.get("ADVSTUDIO_HOME")
    if home:
        return Path(home).expanduser()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        # the XDG spec: a relative path is invalid and must be ignored
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_NAME
