"""Jobs: the unit of long work.

A job is a plain generator ``run(config) -> Iterator[Event]`` whose ``return`` value is its result.
Whoever drives it (the Qt worker in ``advstudio.workers``, the CLI, a test, a notebook) pulls events
one at a time. Pause and cancel need nothing from the job: the driver stops pulling, and cancel is
``gen.close()``, which raises ``GeneratorExit`` at the current ``yield`` so the job's ``finally``
blocks and context managers clean up (e.g. remove half-written files). Jobs therefore yield often
(at least once per step) and never catch ``GeneratorExit``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units finished (``total`` 0 = unknown).

    ``phase``: what the job does now, in words a user reads in the status bar ("training",
    "evaluating on 1,000 held-out digits", "robust accuracy"). A job whose work comes in stages
    of different speeds names them, and ``done`` / ``total`` then count the current phase's
    units, so its ETA is measured per phase (:class:`Eta`) and a final evaluation is not
    "100 %, 0 s left". "" (the default, and every older event): the job is one phase."""

    done: int
    total: int
    message: str = ""
    phase: str = ""


@dataclass(frozen=True)
class Metrics:
    """Scalars measured at ``step`` (e.g. ``{"loss": 0.31, "acc": 0.97}``)."""

    step: int
    values: dict[str, float]


@dataclass(frozen=True)
class Preview:
    """A small image or array for live display (detached, on CPU, numpy)."""

    name: str
    data: Any


@dataclass(frozen=True)
class Log:
    text: str


Event = Progress | Metrics | Preview | Log
Job = Generator[Event, None, R]


class Throttle:
    """True at most ``rate`` times per second (and always on the first call).

    Used for expensive previews: throttled by wall time, not by step count, so a fast job
    does not flood the UI and a slow one still updates.
    """

    def __init__(self, rate: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._last = -float("inf")

    def ready(self) -> bool:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


def in_phase(phase: str) -> Callable[[Event], Event]:
    """A :func:`relay` transform: the inner job's ``Progress`` reported as ``phase`` (its own
    counts and message kept); other events pass unchanged."""

    def tag(event: Event) -> Event:
        if isinstance(event, Progress):
            return Progress(event.done, event.total, event.message, phase)
        return event

    return tag


def format_eta(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s left"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s left"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min left"


class Eta:
    """The time left in a job's current phase, from that phase's own smoothed rate.

    Feed it every ``Progress`` (:meth:`update`); :meth:`seconds_left` and :meth:`describe` read
    it. Why per phase: one rate across a job's phases (training steps, then held-out images
    through PGD) gave a final evaluation "0 s left" and made the ETA rise steadily as slower
    phases came. Each phase keeps its rate when it recurs (the Defence trainer evaluates after
    every epoch), and time spent in other phases never counts in it. Why smoothed: the rate is
    an exponential moving average of samples at least ``window`` seconds long, with time
    constant ``tau`` seconds, so one slow step (an evaluation inside a step, a garbage
    collection) does not swing it; between events the estimate counts down with the clock.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window: float = 0.5, tau: float = 10.0
    ) -> None:
        self._clock, self.window, self.tau = clock, window, tau
        self.rates: dict[str, float] = {}  # units per second, per phase
        self._measured: dict[str, float] = {}  # seconds of samples behind each rate
        self.phase: str | None = None
        self.last: Progress | None = None
        self._anchor = (0, 0.0)  # (done, time) the current rate sample started at
        self._seen_at = 0.0  # when the last event came

    def update(self, progress: Progress) -> None:
        now = self._clock()
        done, anchor_done = progress.done, self._anchor[0]
        restarted = self.last is None or done < anchor_done or progress.total != self.last.total
        if progress.phase != self.phase or restarted:
            self.phase = progress.phase  # a new phase, or this one restarted: a new sample
            self._anchor = (done, now)
        elif now - self._anchor[1] >= self.window and done > anchor_done:
            dt = now - self._anchor[1]
            sample = (done - anchor_done) / dt
            old = self.rates.get(self.phase)
            measured = self._measured.get(self.phase, 0.0) + dt
            self._measured[self.phase] = measured
            # the plain mean until ``tau`` seconds are measured, then an exponential average
            weight = max(1.0 - math.exp(-dt / self.tau), dt / measured)
            self.rates[self.phase] = sample if old is None else old + weight * (sample - old)
            self._anchor = (done, now)
        self.last, self._seen_at = progress, now

    def resumed(self) -> None:
        """After a pause: the time paused counts in no rate."""
        if self.last is not None:
            self._anchor = (self._anchor[0], self._clock())
            self._seen_at = self._clock()

    def seconds_left(self) -> float | None:
        """None while unknown: no rate measured yet in this phase, no total, or the phase's
        units all done (whatever follows has not said what it is)."""
        p = self.last
        if p is None or p.total <= 0 or p.done >= p.total:
            return None
        rate = self.rates.get(p.phase)
        if not rate:
            return None
        left = p.total - p.done
        # counting down with the clock, but never below the units after the one under way: a
        # slow unit holds the estimate rather than running it to "0 s left"
        return max((left - 1) / rate, left / rate - (self._clock() - self._seen_at))

    def describe(self) -> str:
        """ "phase — k/n — ETA": "training — 120/469 — 35 s left"; "finishing…" once the
        phase's units are done; the parts not known left out."""
        p = self.last
        if p is None:
            return ""
        parts = [p.phase] if p.phase else []
        if p.total > 0:
            parts.append(f"{p.done:,}/{p.total:,}")
            left = self.seconds_left()
            if p.done >= p.total:
                parts.append("finishing…")
            elif left is not None:
                parts.append(format_eta(left))
        elif p.done > 0:
            parts.append(f"{p.done:,}")
        return " — ".join(parts)


def relay(
    job: Job[R], transform: Callable[[Event], Event | None] | None = None
) -> Generator[Event, None, R]:
    """Forward ``job``'s events and return its result: ``result = yield from relay(job, f)``.

    The one place a job runs another job inside itself. ``transform`` maps each event to the
    event to forward (e.g. progress rescaled to the outer job) or to None to drop it; without it
    every event passes as it is. Closing the relay (cancel) closes ``job``, so its ``finally``
    blocks run; an exception from ``job`` propagates unchanged.
    """
    if transform is None:
        return (yield from job)
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            out = transform(event)
            if out is not None:
                yield out
    finally:
        job.close()


@dataclass
class Outcome:
    """What :func:`drive` collected from a job."""

    result: Any = None
    events: list[Event] = field(default_factory=list)


def drive(
    job: Iterator[Event], on_event: Callable[[Event], None] | None = None, keep_events: bool = False
) -> Outcome:
    """Run a job to the end in the calling thread (CLI, tests, notebooks)."""
    outcome = Outcome()
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            outcome.result = stop.value
            return outcome
        if keep_events:
            outcome.events.append(event)
        if on_event is not None:
            on_event(event)
