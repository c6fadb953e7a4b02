"""Jobs: the unit of long work.

A job is a plain generator ``run(config) -> Iterator[Event]`` whose ``return`` value is its result.
Whoever drives it (the Qt worker in ``advstudio.workers``, the CLI, a test, a notebook) pulls events
one at a time. Pause and cancel need nothing from the job: the driver stops pulling, and cancel is
``gen.close()``, which raises ``GeneratorExit`` at the current ``yield`` so the job's ``finally``
blocks and context managers clean up (e.g. remove half-written files). Jobs therefore yield often
(at least once per step) and never catch ``GeneratorExit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units finished (``total`` 0 = unknown)."""

    done: int
    total: int
    message: str = ""


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
