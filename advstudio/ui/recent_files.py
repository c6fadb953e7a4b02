"""File ▸ Recent files: the last images and model files opened, kept in QSettings.

Why prune on every read: files move or are deleted between sessions; a menu entry that fails
when clicked is worse than none, so missing files never reach the menu.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10
KEY = "recent_files"


class RecentFiles:
    """Most recent first; each entry is ("image" | "model", absolute path)."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def entries(self) -> list[tuple[str, Path]]:
        raw = self.settings.value(KEY, []) or []
        if isinstance(raw, str):  # QSettings returns a one-item list as a plain string
            raw = [raw]
        kept = []
        for item in raw:
            kind, _, path = str(item).partition("|")
            if kind in ("image", "model") and Path(path).is_file():
                kept.append((kind, Path(path)))
        if len(kept) != len(raw):
            self._save(kept)
        return kept

    def add(self, kind: str, path: Path) -> None:
        path = Path(path).resolve()
        kept = [(k, p) for k, p in self.entries() if p != path]
        self._save([(kind, path), *kept][:MAX_RECENT])

    def clear(self) -> None:
        self._save([])

    def _save(self, entries: list[tuple[str, Path]]) -> None:
        self.settings.setValue(KEY, [f"{kind}|{path}" for kind, path in entries])
