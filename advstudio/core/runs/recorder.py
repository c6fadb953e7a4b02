"""Recording one run while its job runs: metrics, log lines, artifacts and the final status.

The app's workers and ``advstudio-run`` record through :func:`advstudio.core.runs.wrap.recorded`,
which wraps the job in ``with store.record(...) as rec`` and passes every event to
``rec.log_event`` (a notebook may do the same by hand). Metrics are buffered and written at most
every ``FLUSH_INTERVAL`` seconds, so recording costs microseconds per event; after a crash at most
that much of the stream is lost, and the reader ignores a line cut in half. The last image of each
live preview (a GAN's sample grid) is saved as ``artifacts/<name>.png`` when the run ends, however
it ends. Leaving the ``with`` block by an exception records ``failed`` (with the message); by
``GeneratorExit`` (the job generator was closed, i.e. cancelled) or ``KeyboardInterrupt``,
``cancelled``.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from advstudio.core.atomic import atomic_write_bytes, write_fault
from advstudio.core.errors import explain
from advstudio.core.jobs import Event, Log, Metrics, Preview
from advstudio.core.runs.files import atomic_write_json, metrics_line, plain
from advstudio.core.runs.info import RunStatus, RunStoreError

FLUSH_INTERVAL = 0.5  # seconds between writes of buffered metrics and log lines


class RunFolders(Protocol):
    """What a recorder needs of its store (:class:`~advstudio.core.runs.store.RunStore`), named
    here so that the store imports the recorder and not the other way round."""

    def run_path(self, run_id: str) -> Path: ...

    def add_artifact(self, run_id: str, name: str, data: bytes | str | os.PathLike) -> Path: ...

    def _save(self, meta: dict[str, Any], config: dict[str, Any]) -> None: ...


def preview_image(preview: Preview) -> Any:
    """The preview's pixels when it is an image, float (H, W, 1 or 3) in [0, 1] (a 2-D array is
    read as grey), else None (curves, galleries of many images, snapshots)."""
    import numpy as np

    data = preview.data
    if not isinstance(data, np.ndarray) or data.dtype.kind != "f" or data.size == 0:
        return None
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[2] not in (1, 3) or min(data.shape[:2]) < 8:
        return None
    return data


class LastImages:
    """The last image of each preview a job showed, written as ``<name>.png`` at its end (by the
    recorder into the run's artifacts, by ``advstudio-run --out`` into that folder)."""

    SAFE_NAME = re.compile(r"[A-Za-z0-9_]+")  # a plain file name, nothing that leaves the folder

    def __init__(self) -> None:
        self._images: dict[str, Any] = {}

    def add(self, preview: Preview) -> None:
        image = preview_image(preview)
        if image is not None and self.SAFE_NAME.fullmatch(preview.name):
            self._images[preview.name] = image

    def save(self, folder: Path) -> None:
        from advstudio.core.images import save_png

        for name, pixels in self._images.items():
            save_png(pixels, folder / f"{name}.png")
        self._images.clear()


def scalar_summary(values: Any) -> dict[str, Any]:
    """The top-level numbers, booleans and short strings of a result, for the history table."""
    values = plain(values)
    if not isinstance(values, dict):
        values = {"result": values}
    return {
        k: v
        for k, v in values.items()
        if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 200)
    }


class Recorder:
    """Records one run; made by :meth:`RunStore.record`, used as a context manager."""

    def __init__(self, store: RunFolders, meta: dict[str, Any], config: dict[str, Any]) -> None:
        self.store = store
        self.run_id: str = meta["id"]
        self.path: Path = store.run_path(self.run_id)
        self._meta, self._config = meta, config
        self._metrics = open(self.path / "metrics.jsonl", "a", encoding="utf-8")
        self._log: Any = None  # log.txt, opened on the first Log event
        self._metric_lines: list[str] = []
        self._log_lines: list[str] = []
        self._last_values: dict[str, Any] = {}
        self._images = LastImages()  # saved into artifacts/ at the end
        self._t0 = self._last_flush = time.monotonic()
        self.status = RunStatus.RUNNING

    # -- while running -------------------------------------------------------------------------
    def log_event(self, event: Event) -> None:
        """Metrics -> ``metrics.jsonl``, Log -> ``log.txt``; the last image of each Preview ->
        ``artifacts/<name>.png`` when the run ends; Progress is not kept."""
        if isinstance(event, Metrics):
            self.log_metrics(event.step, event.values)
        elif isinstance(event, Log):
            self.log_text(event.text)
        elif isinstance(event, Preview):
            self._images.add(event)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Append ``{"step": step, **values}`` to the metrics stream (``step`` is reserved)."""
        if self.status is not RunStatus.RUNNING:
            self._check_running()
        self._metric_lines.append(metrics_line(step, values))
        self._last_values.update(values)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def log_text(self, text: str) -> None:
        self._check_running()
        self._log_lines.append(f"[{time.monotonic() - self._t0:9.2f}s] {text}")
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the operating system (they survive a crash of this
        process; :meth:`finish` also syncs them to disk)."""
        self._check_running()
        try:
            if self._metric_lines:
                self._metrics.write("\n".join(self._metric_lines) + "\n")
                self._metrics.flush()
                self._metric_lines.clear()
            if self._log_lines:
                if self._log is None:
                    self._log = open(self.path / "log.txt", "a", encoding="utf-8")
                self._log.write("\n".join(self._log_lines) + "\n")
                self._log.flush()
                self._log_lines.clear()
        except OSError as exc:  # a full disk: say so plainly (what was flushed before stays)
            raise (write_fault(exc, self.path) or exc) from exc
        self._last_flush = time.monotonic()

    def add_artifact(self, name: str, data: bytes | str | os.PathLike) -> Path:
        """See :meth:`RunStore.add_artifact`."""
        return self.store.add_artifact(self.run_id, name, data)

    # -- ending --------------------------------------------------------------------------------
    def finish(self, result_summary: Any = None) -> None:
        """Mark the run finished. The full result goes to ``result.json``; its scalar fields and
        the last value of every metric become the summary shown in the history."""
        self._end(RunStatus.FINISHED, result=result_summary)

    def fail(self, error: BaseException | str) -> None:
        """Mark the run failed with the exception's one-line explanation (traceback kept in
        ``error.txt``)."""
        if isinstance(error, BaseException):
            details = "".join(traceback.format_exception(error))
            self._end(RunStatus.FAILED, error=explain(error), details=details)
        else:
            self._end(RunStatus.FAILED, error=str(error))

    def cancel(self, message: str = "cancelled") -> None:
        self._end(RunStatus.CANCELLED, error=message)

    def _check_running(self) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunStoreError(f"run {self.run_id} has already ended ({self.status})")

    def _end(
        self, status: RunStatus, error: str = "", details: str = "", result: Any = None
    ) -> None:
        self.flush()
        self.status = status
        for stream in (self._metrics, self._log):
            if stream is not None:
                os.fsync(stream.fileno())
                stream.close()
        self._images.save(self.path / "artifacts")
        # result.json and error.txt become durable with meta.json's folder sync, in _save
        if result is not None:
            atomic_write_json(self.path / "result.json", result, sync_dir=False)
        if details:
            atomic_write_bytes(self.path / "error.txt", details.encode(), sync_dir=False)
        summary = scalar_summary(self._last_values)
        if result is not None:
            summary.update(scalar_summary(result))
        self._meta.update(status=status.value, finished=time.time(), error=error, summary=summary)
        self.store._save(self._meta, self._config)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self.status is not RunStatus.RUNNING:
            return False
        if exc is None:
            self.finish()
            return False
        try:
            if isinstance(exc, GeneratorExit):
                self.cancel("cancelled")
            elif isinstance(exc, KeyboardInterrupt):
                self.cancel("interrupted by the user (Ctrl+C)")
            else:
                self.fail(exc)
        except OSError as store_error:  # keep the job's own exception, which matters more
            exc.add_note(f"(the run store could not record this run's end: {store_error})")
        return False
