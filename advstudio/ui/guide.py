"""Help ▸ Guide: a short walk-through of the ideas behind the workbench, each section with a
button that opens the tab where it is tried, and Help ▸ Keyboard shortcuts.

Why in the window and not only in the docs: a newcomer meets "white-box" or "VAT" in a combo
box; two clicks from there to a paragraph and a "Try it" button keep them in the app. The
shortcut list is read from the window's actions, so it cannot miss one.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

# (title, text, the tab it is tried in)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "Adversarial examples",
        "A small, often invisible change to an input that makes a model "
        "answer wrongly. Its size is measured by ε: the largest change of one pixel (L∞) or the "
        "length of the whole change (L2).",
        "Attack",
    ),
    (
        "White box and black box",
        "A white-box attacker knows the model and follows its "
        "gradients. A black-box one does not: it crafts the example on a surrogate of its own "
        "(transfer) or estimates gradients from the model's scores (NES, SPSA, SimBA).",
        "Attack",
    ),
    (
        "FGSM",
        "The fast gradient sign method: one step of size ε along the sign of the loss's "
        "gradient. BIM and PGD repeat it in small steps, which is stronger.",
        "Attack",
    ),
    (
        "Targeted attacks",
        "An untargeted attack only pushes away from the true class; a "
        "targeted one steers the model to a class you choose, which needs more effort.",
        "Attack",
    ),
    (
        "Poisoning",
        "Instead of changing inputs at test time, the attacker corrupts the "
        "training data: flipped labels, or a backdoor trigger the trained model obeys.",
        "Poisoning",
    ),
    (
        "Adversarial training: proactive vs reactive",
        "Proactive: train the model on "
        "adversarial examples (FGSM, PGD) so it resists them. Reactive: leave the model and "
        "detect suspicious inputs as they arrive. Check either with a strong attack.",
        "Defence",
    ),
    (
        "GANs and their difficulties",
        "A generator and a discriminator trained against each "
        "other. Training is unstable: losses oscillate, and the generator may collapse onto a "
        "few modes (watch classes covered and the Fréchet distance).",
        "GAN",
    ),
    (
        "DCGAN",
        "A GAN of strided convolutions with batch norm, the recipe that made image "
        "GANs train reliably.",
        "GAN",
    ),
    (
        "VAT",
        "Virtual adversarial training smooths the model's prediction around every input, "
        "labelled or not, so a few labels go a long way.",
        "Defence",
    ),
)


class GuideDialog(QDialog):
    """The walk-through; ``open_tab(name)`` is called by a section's "Try it" button."""

    def __init__(self, open_tab: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Guide")
        self.resize(560, 600)
        body = QWidget()
        column = QVBoxLayout(body)
        self.buttons: dict[str, QPushButton] = {}
        for title, text, tab in SECTIONS:
            column.addWidget(QLabel(f"<h3>{title}</h3><p>{text}</p>", wordWrap=True))
            button = QPushButton(f"Try it in the {tab} tab")
            button.clicked.connect(lambda _=False, t=tab: open_tab(t))
            column.addWidget(button)
            self.buttons[title] = button
        column.addStretch(1)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)


def shortcuts(window: QWidget) -> list[tuple[str, str]]:
    """(keys, what they do) for every shortcut of ``window``: its actions (menu text without
    '&') and the tabs' QShortcuts (their whatsThis, else the widget they belong to)."""
    rows = []
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            rows.append(
                (
                    sequence.toString(QKeySequence.SequenceFormat.NativeText),
                    action.text().replace("&", "").rstrip("…"),
                )
            )
    for shortcut in window.findChildren(QShortcut):
        owner = type(shortcut.parent()).__name__
        rows.append(
            (
                shortcut.key().toString(QKeySequence.SequenceFormat.NativeText),
                shortcut.whatsThis() or f"(in {owner})",
            )
        )
    return sorted(set(rows), key=lambda r: (r[1].startswith("("), r[1]))


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the window (menus and tabs)."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(("Shortcut", "Action"))
        for row, (keys, what) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(what))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.resize(480, 420)
