"""Menu actions driven as a user does: through the QAction (its shortcut or a click)."""

from __future__ import annotations

import torch


def _plain_accuracy() -> float:
    """The built-in CNN's accuracy on the 1,000 test digits, computed without the app."""
    from advstudio.core.data import load_digits
    from advstudio.core.models.registry import load_builtin

    model = load_builtin("digits-cnn")
    x, y = load_digits("test")
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_jobs_evaluate_action_evaluates_the_current_model(qtbot, window):
    """Ctrl+E: triggered(checked) must not reach the job as its batch size (it did: 'batch_size
    must be at least 1, not False')."""
    qtbot.waitUntil(lambda: window.evaluate_action.isEnabled(), timeout=60_000)
    errors = []
    window.jobs.job_started.connect(lambda w: w.errored.connect(errors.append))
    with qtbot.waitSignal(window.jobs.job_ended, timeout=120_000,
                          check_params_cb=lambda w: w.title.startswith("Evaluating")):
        window.evaluate_action.trigger()
    assert errors == []
    assert window.status_message.text() == (
        f"digits-cnn: {_plain_accuracy() * 100:.1f} % correct on 1,000 test digits")
