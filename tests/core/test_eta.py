"""Phases in the job protocol and the phase-aware, smoothed ETA (a fake clock: no wall time)."""

from __future__ import annotations

import pytest

from advstudio.core.jobs import Eta, Log, Progress, drive, in_phase, relay


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_without_a_phase_is_the_old_event():
    p = Progress(3, 10, "step 3")
    assert (p.done, p.total, p.message, p.phase) == (3, 10, "step 3", "")
    assert Progress(3, 10, "step 3") == p  # positional fields unchanged


def test_in_phase_tags_the_inner_jobs_progress_only():
    def inner():
        yield Progress(1, 2, "batch 1")
        yield Log("hello")
        return 7

    def outer():
        return (yield from relay(inner(), in_phase("robust accuracy")))

    out = drive(outer(), keep_events=True)
    assert out.result == 7
    assert out.events == [Progress(1, 2, "batch 1", "robust accuracy"), Log("hello")]


def test_the_eta_is_the_phases_remaining_units_over_its_own_rate():
    clock = Clock()
    eta = Eta(clock=clock, window=0.5, tau=10.0)
    for step in range(0, 11):  # 2 steps a second
        eta.update(Progress(step, 100, phase="training"))
        clock.now += 0.5
    clock.now -= 0.5  # read at the moment of the last event
    assert eta.rates["training"] == pytest.approx(2.0)
    assert eta.seconds_left() == pytest.approx(90 / 2.0)
    assert eta.describe() == "training — 10/100 — 45 s left"


def test_a_slow_evaluation_phase_does_not_slow_the_training_rate_and_has_its_own():
    clock = Clock()
    eta = Eta(clock=clock)
    for step in range(0, 21):  # training: 4 steps a second
        eta.update(Progress(step, 40, phase="training"))
        clock.now += 0.25
    for image in range(0, 11):  # evaluation: 1 image every 2 seconds
        eta.update(Progress(image, 10, phase="evaluating on 10 held-out digits"))
        clock.now += 2.0
    assert eta.describe() == "evaluating on 10 held-out digits — 10/10 — finishing…"
    assert eta.rates["evaluating on 10 held-out digits"] == pytest.approx(0.5)
    # back to training after the evaluation: the 20 s spent evaluating do not count
    eta.update(Progress(20, 40, phase="training"))
    clock.now += 0.25
    eta.update(Progress(21, 40, phase="training"))
    assert eta.rates["training"] == pytest.approx(4.0)
    assert eta.seconds_left() == pytest.approx(19 / 4.0)


def test_no_100_percent_zero_seconds_and_no_eta_before_a_rate():
    clock = Clock()
    eta = Eta(clock=clock)
    eta.update(Progress(0, 1000, phase="robust accuracy"))
    assert eta.seconds_left() is None
    assert eta.describe() == "robust accuracy — 0/1,000"
    eta.update(Progress(5, 5, phase="training"))
    assert eta.seconds_left() is None and eta.describe().endswith("finishing…")
    eta.update(Progress(0, 0, phase="loading"))
    assert eta.describe() == "loading"


def test_the_estimate_counts_down_but_a_slow_unit_holds_it():
    clock = Clock()
    eta = Eta(clock=clock)
    for step in range(0, 5):  # 1 unit a second
        eta.update(Progress(step, 10, phase="certifying"))
        clock.now += 1.0
    clock.now -= 1.0
    assert eta.seconds_left() == pytest.approx(6.0)
    clock.now += 0.5
    assert eta.seconds_left() == pytest.approx(5.5)  # counts down between events
    clock.now += 30.0  # the unit under way is slow
    assert eta.seconds_left() == pytest.approx(5.0)  # the 5 units after it, never 0


def test_the_smoothed_eta_does_not_rise_with_noisy_steps():
    """Steps alternating 0.2 s and 0.6 s (mean 0.4): the raw per-step rate swings 3x; the
    estimate read at each event only falls (each event is one unit closer)."""
    clock = Clock()
    eta = Eta(clock=clock, window=0.5, tau=10.0)
    readings = []
    for step in range(0, 200):
        eta.update(Progress(step, 200, phase="training"))
        left = eta.seconds_left()
        if step >= 20 and left is not None:
            readings.append(left)
        clock.now += 0.2 if step % 2 else 0.6
    rises = [b - a for a, b in zip(readings, readings[1:]) if b > a]
    assert max(rises, default=0.0) < 0.5  # seconds: jitter, never a climb
    assert readings[0] == pytest.approx(180 * 0.4, rel=0.15)


def test_time_paused_counts_in_no_rate():
    clock = Clock()
    eta = Eta(clock=clock)
    for step in range(0, 5):  # 1 unit a second
        eta.update(Progress(step, 20, phase="training"))
        clock.now += 1.0
    clock.now += 60.0  # paused for a minute
    eta.resumed()
    clock.now += 1.0
    eta.update(Progress(5, 20, phase="training"))
    assert eta.rates["training"] == pytest.approx(1.0)


def test_the_cli_bar_shows_the_phase_its_count_and_the_message():
    import io

    from advstudio.cli import ProgressBar

    stream = io.StringIO()  # not a tty: only forced (phase-end) lines are written
    bar = ProgressBar(stream, width=10)
    bar.update(0, 4, "epoch 1 of 1, step 0 of 4", phase="training")
    bar.update(4, 4, "epoch 1 of 1, step 4 of 4", force=True, phase="training")
    bar.update(60, 60, "robust accuracy: 60 of 60", force=True, phase="evaluating on 60 digits")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "[##########] 100.0% training — 4/4 — finishing… · epoch 1 of 1, step 4 of 4",
        "[##########] 100.0% evaluating on 60 digits — 60/60 — finishing… · "
        "robust accuracy: 60 of 60",
    ]
