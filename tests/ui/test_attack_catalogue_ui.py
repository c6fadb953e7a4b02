"""A toy attack registered in the catalogue appears in the Attack tab (after the list is rebuilt)
and its sweep panel, with the fields its entry takes, and runs from the Attack button."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

from advstudio.core.attacks import catalogue
from advstudio.core.images import to_tensor
from tests.core.helpers import toy_attack

from .conftest import drop_files


@pytest.fixture
def tab(qtbot, window, digit_png):
    drop_files(window, digit_png)
    qtbot.waitUntil(
        lambda: window.attack_tab is not None and window.state.image is not None, timeout=10_000
    )
    window.tabs.setCurrentIndex(1)
    return window.attack_tab


def test_a_registered_toy_attack_is_offered_and_runs(qtbot, tab):
    from advstudio.ui.attack.sweep_panel import SweepPanel

    assert tab.attack.findData("toy") < 0
    with catalogue.registered(toy_attack()):
        tab.access.setCurrentIndex(tab.access.findData("transfer"))
        assert tab.attack.findData("toy") >= 0  # the transfer list has it too
        tab.access.setCurrentIndex(tab.access.findData("white-box"))
        index = tab.attack.findData("toy")
        assert tab.attack.itemText(index) == "Toy (lift every pixel)"
        tab.attack.setCurrentIndex(index)
        assert tab.eps_spin.isEnabled() and tab.targeted.isEnabled()
        assert not tab.steps.isEnabled() and not tab.alpha.isEnabled()
        assert not tab.budget.isEnabled()
        tab.set_eps(0.2)
        with qtbot.waitSignal(tab.attacked, timeout=30_000) as blocker:
            qtbot.mouseClick(tab.attack_button, Qt.MouseButton.LeftButton)
        x = to_tensor(tab.state.image)
        assert torch.equal(blocker.args[0].x_adv, (x + 0.2).clamp(0, 1))
        panel = SweepPanel(tab.state, tab.jobs, tab.settings)
        qtbot.addWidget(panel)
        assert panel.checks["toy"].text() == "Toy-1"
    tab.access.setCurrentIndex(tab.access.findData("query"))
    tab.access.setCurrentIndex(tab.access.findData("white-box"))
    assert tab.attack.findData("toy") < 0  # gone with its entry
