"""A run's config as a table, or the differences between two runs' configs.

Why a table: configs have twenty-odd fields; as one comma-separated line the one that matters
(ε, the learning rate) was lost in it. Why a diff for two runs: "what did I change between
these two?" is the question behind selecting two runs.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

CHANGED = QColor(255, 236, 179)  # a soft amber behind the values that differ


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class ConfigTable(QTableWidget):
    def __init__(self) -> None:
        super().__init__(0, 2)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.setHorizontalHeaderLabels(("Setting", "Value"))

    def show_config(self, config: dict[str, Any]) -> None:
        self._fill(("Setting", "Value"), [(k, [_text(v)], False) for k, v in config.items()])

    def show_diff(self, names: tuple[str, str], a: dict[str, Any], b: dict[str, Any]) -> int:
        """Only the settings that differ (a missing one shows as '—'); returns their number."""
        missing = object()
        rows = []
        for key in dict.fromkeys([*a, *b]):
            va, vb = a.get(key, missing), b.get(key, missing)
            if va != vb:
                rows.append((key, ["—" if v is missing else _text(v) for v in (va, vb)], True))
        self._fill(("Setting", *names), rows)
        return len(rows)

    def clear_rows(self) -> None:
        self.setRowCount(0)

    def _fill(self, headers: tuple[str, ...], rows: list[tuple[str, list[str], bool]]) -> None:
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(rows))
        for r, (key, values, changed) in enumerate(rows):
            self.setItem(r, 0, QTableWidgetItem(key))
            for c, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                if changed:
                    item.setBackground(CHANGED)
                self.setItem(r, c, item)
