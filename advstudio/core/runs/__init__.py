"""Run history: every job run's config, metrics, log and artifacts, kept on disk and searchable.

>>> store = RunStore.open()                        # the user's store (default_store_root())
>>> outcome = drive(recorded(store, "evaluate", config, evaluate))  # runs.wrap.recorded
>>> store.list_runs(kind="evaluate", status="finished", text="digits")

Qt-free (stdlib ``sqlite3`` and ``json``); see :mod:`advstudio.core.runs.store` for the layout.
"""

from advstudio.core.runs.info import RunInfo, RunNotFoundError, RunStatus, RunStoreError
from advstudio.core.runs.owner import Owner
from advstudio.core.runs.paths import default_store_root
from advstudio.core.runs.recorder import FLUSH_INTERVAL, Recorder
from advstudio.core.runs.store import CHECKPOINT, RunStore, software_versions

__all__ = [
    "CHECKPOINT",
    "FLUSH_INTERVAL",
    "Owner",
    "Recorder",
    "RunInfo",
    "RunNotFoundError",
    "RunStatus",
    "RunStore",
    "RunStoreError",
    "default_store_root",
    "software_versions",
]
