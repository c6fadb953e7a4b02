"""Record any job as it runs: ``recorded(store, kind, config, job)`` is itself a job that
forwards every event and writes it to the run store on the job's own thread (so the UI thread
never waits on a disk sync). Closing it (cancel) closes the inner job and marks the run
cancelled; an exception marks it failed and propagates."""

from __future__ import annotations

from typing import Any

from advstudio.core.jobs import Job
from advstudio.core.runs.files import plain
from advstudio.core.runs.store import RunStore


def recorded(store: RunStore, kind: str, config: Any, job: Job, *, title: str | None = None
             ) -> Job:
    from advstudio.core.jobkinds import config_to_dict

    device = str(getattr(config, "device", "") or "")
    with store.record(kind, config_to_dict(config), device=device,
                      seed=getattr(config, "seed", None), title=title) as rec:
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
