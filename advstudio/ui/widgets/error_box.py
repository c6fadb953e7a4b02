"""Errors shown to the user: a message, and the traceback behind a "Show Details…" button."""

from __future__ import annotations

import traceback

from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from advstudio.core.errors import explain


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> QMessageBox:
    """A non-modal message box (the app stays usable; tests are not blocked)."""
    box = QMessageBox(
        QMessageBox.Icon.Warning, title, explain(exc), QMessageBox.StandardButton.Ok, parent
    )
    box.setDetailedText("".join(traceback.format_exception(exc)))
    box.setModal(False)
    box.open()
    return box


def report_job_error(parent: QWidget, status: QLabel, title: str, exc: BaseException) -> None:
    """A job's failure: one line in ``status``; a message box with the traceback too unless it
    is one of our own, expected errors (bad settings, a diverged run, offline...)."""
    from advstudio.core.errors import AdvStudioError

    status.setText(explain(exc))
    if not isinstance(exc, AdvStudioError):
        show_error(parent, title, exc)
