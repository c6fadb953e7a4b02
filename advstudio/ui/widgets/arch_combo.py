"""The network list of the training tabs (Defence, Poisoning): the architectures that fit the
chosen data set, refilled when it changes, keeping the current choice where it still fits."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox


def fill_archs(combo: QComboBox, names: list[str]) -> None:
    """``combo`` holds ``names`` (registry keys, shown by their labels), without signalling;
    the previous choice stays selected when it is among them, else the first is."""
    from advstudio.core.defence.defaults import arch_label

    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    for name in names:
        combo.addItem(arch_label(name), name)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    combo.blockSignals(False)
