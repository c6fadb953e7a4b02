"""Top-k predictions as labelled confidence bars."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QWidget


class TopKBars(QWidget):
    """``set_prediction(names, probs)`` shows one row per class, most likely first."""

    def __init__(self, k: int = 5, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        self.names: list[QLabel] = []
        self.bars: list[QProgressBar] = []
        self.values: list[QLabel] = []
        for row in range(k):
            name = QLabel("", alignment=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            name.setMinimumWidth(90)
            bar = QProgressBar(maximum=1000, textVisible=False)
            bar.setFixedHeight(14)
            value = QLabel(
                "", alignment=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            )
            value.setMinimumWidth(56)
            grid.addWidget(name, row, 0)
            grid.addWidget(bar, row, 1)
            grid.addWidget(value, row, 2)
            self.names.append(name)
            self.bars.append(bar)
            self.values.append(value)
        self.clear()

    def clear(self) -> None:
        for name, bar, value in zip(self.names, self.bars, self.values):
            name.setText("—")
            name.setToolTip("")
            bar.setValue(0)
            value.setText("")

    def set_prediction(self, names: list[str], probs: list[float]) -> None:
        """Show ``probs`` (in [0, 1]). Non-finite or out-of-range values are refused with a
        ``ValueError`` before anything changes, so the bars never show half a prediction (the
        core refuses a model's NaN scores first: this is the last line of defence)."""
        bad = [
            p
            for p in probs
            if not (isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0)
        ]
        if bad:
            raise ValueError(f"probabilities must be finite numbers in [0, 1], not {bad[0]!r}")
        self.clear()
        for row, (n, p) in enumerate(zip(names, probs)):
            if row >= len(self.bars):
                break
            self.names[row].setText(n if len(n) <= 24 else n[:22] + "…")
            self.names[row].setToolTip(n)
            self.bars[row].setValue(round(p * 1000))
            self.values[row].setText(f"{p * 100:.1f} %")

    def shown(self) -> list[tuple[str, float]]:
        """What the rows display now: (tooltip name, probability) pairs, for tests."""
        return [
            (n.toolTip(), b.value() / 1000) for n, b in zip(self.names, self.bars) if n.toolTip()
        ]
