"""Errors shown to the user: a message, and the traceback behind a "Show Details…" button."""

from __future__ import annotations

import traceback

from PySide6.QtWidgets import QMessageBox, QWidget

from advstudio.core.errors import explain


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> QMessageBox:
    """A non-modal message box (the app stays usable; tests are not blocked)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, explain(exc), QMessageBox.StandardButton.Ok,
                      parent)
    box.setDetailedText("".join(traceback.format_exception(exc)))
    box.setModal(False)
    box.open()
    return box
