"""Record any job as it runs: ``recorded(store, kind, config, run)`` is itself a job that
forwards every event and writes it to the run store on the job's own thread (so the UI thread
never waits on a disk sync). Closing it (cancel) closes the inner job and marks the run
cancelled; an exception marks it failed and propagates.

``run`` is the job function (``run(config) -> job``): the job is then built once the run folder
exists, so a training job without a checkpoint path of its own checkpoints into its run
(``artifacts/checkpoint.pt``, see :mod:`advstudio.core.runs.resume`), and ``resume_from`` continues
another run's checkpoint. A job already built is accepted too (recorded as it is).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from advstudio.core.jobs import Job
from advstudio.core.runs.files import plain
from advstudio.core.runs.resume import with_run_checkpoint
from advstudio.core.runs.store import RunStore


def recorded(store: RunStore, kind: str, config: Any, run: Job | Callable[[Any], Job], *,
             title: str | None = None, resume_from: Path | None = None) -> Job:
    from advstudio.core.jobkinds import config_to_dict

    device = str(getattr(config, "device", "") or "")
    with store.record(kind, config_to_dict(config), device=device,
                      seed=getattr(config, "seed", None), title=title) as rec:
        job = run(with_run_checkpoint(config, rec.path, resume_from)) if callable(run) else run
        try:
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    rec.finish(plain(stop.value))
                    return stop.value
                rec.log_event(event)
                yield event
        finally:
            job.close()
