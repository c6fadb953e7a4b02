"""The playground's training job: step as fast as possible, read the live hyper-parameters
between two steps, stream the losses and (throttled by wall time) snapshots for the plot."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from advstudio.core.jobs import Job, Metrics, Preview, Progress, Throttle
from advstudio.core.playground.metrics import Coverage, Diagnostics, coverage
from advstudio.core.playground.model import (
    Playground,
    PlaygroundConfig,
    PlaygroundParams,
    one_thread,
)
from advstudio.core.playground.targets import Target

PREVIEW_RATE = 15.0  # snapshots per second at most
METRICS_RATE = 50.0  # Metrics events per second at most


class LiveParams:
    """The hyper-parameters shared by the UI thread (writes) and the job thread (reads before
    every step). A lock guards one immutable :class:`PlaygroundParams`, so a reader always sees
    a consistent set, never half of an update."""

    def __init__(self, params: PlaygroundParams | None = None) -> None:
        self._lock = threading.Lock()
        self._params = (params or PlaygroundParams()).validated()

    def get(self) -> PlaygroundParams:
        with self._lock:
            return self._params

    def set(self, params: PlaygroundParams) -> None:
        params.validated()
        with self._lock:
            self._params = params

    def update(self, **changes) -> PlaygroundParams:
        """Change some fields; a bad value raises :class:`ConfigError` and changes nothing."""
        with self._lock:
            self._params = replace(self._params, **changes).validated()
            return self._params


@dataclass(frozen=True)
class PlaygroundSummary:
    """What :func:`run_playground` returns: G steps done in total and in this run, the last
    step's values and the last coverage measured."""

    steps: int
    steps_this_run: int
    values: dict[str, float]
    coverage: Coverage | None


def measure(samples, target: Target, diagnostics: Diagnostics) -> dict[str, float]:
    """Coverage of ``samples`` (G's image of the fixed display noise), and the warnings."""
    cov = coverage(samples, target)
    diagnostics.add_coverage(cov)
    return {
        "modes_covered": float(cov.modes_covered),
        "n_modes": float(cov.n_modes),
        "quality": cov.quality,
        "collapse": float(diagnostics.collapse),
        "oscillation": float(diagnostics.oscillation),
    }


def prepare_playground(
    params: PlaygroundParams, config: PlaygroundConfig | None = None
) -> Job[Playground]:
    """Build a playground and take one snapshot, so that a UI can do it off its own thread:
    the first optimiser a process builds imports PyTorch's compiler stack (seconds)."""
    yield Progress(0, 0, "preparing the playground")
    with one_thread():
        playground = Playground(params, config)
        playground.snapshot()
    return playground


def run_playground(
    playground: Playground,
    params: LiveParams,
    max_steps: int = 0,
    preview_rate: float = PREVIEW_RATE,
    metrics_rate: float = METRICS_RATE,
    diagnostics: Diagnostics | None = None,
) -> Job[PlaygroundSummary]:
    """Train until cancelled (``max_steps`` 0) or for ``max_steps`` steps (k D + 1 G each).

    After every step it yields: ``Metrics(step, values)`` at most ``metrics_rate`` times a
    second, else a ``Progress(step, max_steps)`` (the driver's chance to pause or cancel). A
    Metrics holds the means over the ``steps`` steps since the previous one of ``loss_d``,
    ``loss_g``, ``d_real``, ``d_fake`` (see :meth:`Playground.d_step`) and ``gp`` for WGAN-GP:
    a job making hundreds of steps a second thus sends the UI tens of events, not hundreds.
    At most ``preview_rate`` times a second the values also hold ``modes_covered``,
    ``n_modes``, ``quality``, ``collapse`` and ``oscillation`` (0 / 1) and ``steps_per_s``, and
    a ``Preview("playground", Snapshot)`` follows. The oscillation test sees every step.
    """
    diagnostics = diagnostics or Diagnostics()
    previews, metrics = Throttle(preview_rate), Throttle(metrics_rate)
    sums: dict[str, float] = {}
    summed = 0
    values: dict[str, float] = {}
    done = 0
    last_time, last_done = time.perf_counter(), 0
    with one_thread():
        while max_steps <= 0 or done < max_steps:
            playground.apply(params.get())
            step_values = playground.step()
            done += 1
            diagnostics.add_step(playground.steps_done, step_values["loss_g"])
            for key, value in step_values.items():
                sums[key] = sums.get(key, 0.0) + value
            summed += 1
            preview = previews.ready() or done == max_steps
            if not (preview or metrics.ready()):
                yield Progress(playground.steps_done, max_steps)
                continue
            values = {key: total / summed for key, total in sums.items()}
            values["steps"] = float(summed)
            sums.clear()
            summed = 0
            if not preview:
                yield Metrics(playground.steps_done, values)
                continue
            now = time.perf_counter()
            snap = playground.snapshot()
            values.update(measure(snap.fake, playground.target, diagnostics))
            values["steps_per_s"] = (done - last_done) / max(now - last_time, 1e-9)
            last_time, last_done = now, done
            yield Metrics(playground.steps_done, values)
            yield Preview("playground", snap)
    return PlaygroundSummary(playground.steps_done, done, values, diagnostics.coverage)
