"""A button that says why it is disabled: its tooltip while disabled is the reason, and its own
tooltip comes back when it is enabled (issue #19: "Attack this model" and the GAN's exports sat
disabled with no hint why)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton


def set_enabled(button: QAbstractButton, enabled: bool, why: str = "") -> None:
    """Enable ``button``, or disable it with ``why`` as its tooltip (its usual tooltip is kept
    in the property ``usual_tip`` and restored when it is enabled again)."""
    usual = button.property("usual_tip")
    if usual is None:
        usual = button.toolTip()
        button.setProperty("usual_tip", usual)
    button.setEnabled(enabled)
    if enabled or not why:
        button.setToolTip(usual)
    else:
        button.setToolTip(f"{why}" + (f"\n\n{usual}" if usual else ""))
