"""The Poisoning tab, built alone on a small app state: live trigger preview, bad trigger
explained, a poisoned victim trained with live curves and a gallery, and a fraction sweep."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


@pytest.fixture
def poison(build_tab):
    return build_tab("poisoning")


def test_trigger_preview_is_exact_and_bad_triggers_are_explained(poison):
    poison.size.setValue(3)
    poison.row.setValue(24)
    poison.col.setValue(24)
    px = poison.preview.pixels
    assert px.shape == (28, 28, 1) and (px[24:27, 24:27] == 1.0).all()
    poison.row.setValue(27)
    assert poison.preview.pixels is None
    assert (
        "goes off the edge" in poison.status.text()
        and "row must be in 0..25" in poison.status.text()
    )
    poison.row.setValue(24)
    assert poison.preview.pixels is not None


def test_fraction_slider_and_spin_agree(poison):
    poison.fraction_slider.setValue(100)
    assert poison.fraction.value() == pytest.approx(10.0)
    poison.fraction.setValue(2.5)
    assert poison.fraction_slider.value() == 25


def test_backdoor_run_through_the_worker(qtbot, poison):
    poison.epochs.setValue(1)
    poison.fraction.setValue(5.0)
    with qtbot.waitSignal(poison.run_done, timeout=300_000) as blocker:
        qtbot.mouseClick(poison.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result.n_poisoned > 0 and 0.8 < result.clean_acc <= 1.0
    assert result.attack_success > 0.5  # BadNets at 5 %: the trigger works after one epoch
    assert poison.epoch_plot.points("clean accuracy") == 1
    assert poison.loss_plot.points("loss") > 10
    assert poison.gallery.pixels is not None and "→" in poison.gallery.caption.text()
    assert "attack success" in poison.status.text()


def test_zero_fraction_is_explained(qtbot, poison, job_ended):
    from advstudio.core.errors import ConfigError

    poison.attack.setCurrentIndex(poison.attack.findData("label-flip"))
    poison.source.setCurrentIndex(poison.source.findData(3))
    poison.fraction.setValue(0.1)  # 0.1 % of ~400 digits of class 3 rounds to no sample
    errors = []
    with job_ended(poison.jobs, timeout=60_000):
        poison.start().errored.connect(errors.append)  # checked at the job's first step
    [error] = errors
    assert isinstance(error, ConfigError)
    assert "fraction 0.001 poisons no sample: class 3 has" in str(error)
    assert str(error) in poison.status.text()
    assert poison.result is None and poison.run_button.isEnabled()
