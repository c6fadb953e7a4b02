"""Record any job as it runs: ``recorded(store, kind, config, run)`` is itself a job that
forwards every event and writes it to the run store on the job's own thread (so the UI thread
never waits on a disk sync). Closing it (cancel) closes the inner job and marks the run
cancelled; an exception marks it failed and propagates. The app's workers and ``advstudio-run``
both record through it, so a run is resumable and keeps its model however it was started.

``run`` is the job function (``run(config) -> job``): the job is then built once the run folder
exists, so a training job without a checkpoint path of its own checkpoints into its run
(``artifacts/checkpoint.pt``, see :mod:`advstudio.core.runs.resume`), and ``resume_from`` continues
another run's checkpoint. A job already built is accepted too (recorded as it is). The weights in
the job's result are saved as ``artifacts/<name>.pt`` with a card (see
:mod:`advstudio.core.runs.models`); the job's own result is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from advstudio.core.jobs import Event, Job, relay
from advstudio.core.runs.models import keep_models
from advstudio.core.runs.recorder import Recorder
from advstudio.core.runs.resume import with_run_checkpoint
from advstudio.core.runs.store import RunStore


def recorded(
    store: RunStore,
    kind: str,
    config: Any,
    run: Job | Callable[[Any], Job],
    *,
    title: str | None = None,
    resume_from: Path | None = None,
    device: str | None = None,
    on_start: Callable[[Recorder], None] | None = None,
) -> Job:
    """``run``'s job, recorded in ``store``. ``device``: the one to show in the history
    (default: the config's). ``on_start(recorder)`` is called once the run exists, before the
    job is built: a driver learns its id and folder there."""
    from advstudio.core.jobkinds import config_to_dict

    if device is None:
        device = str(getattr(config, "device", "") or "")
    with store.record(
        kind, config_to_dict(config), device=device, seed=getattr(config, "seed", None), title=title
    ) as rec:
        if on_start is not None:
            on_start(rec)
        job = run(with_run_checkpoint(config, rec.path, resume_from)) if callable(run) else run

        def log(event: Event) -> Event:
            rec.log_event(event)
            return event

        result = yield from relay(job, log)
        rec.finish(keep_models(result, rec.path / "artifacts", prefix="artifacts/"))
        return result
