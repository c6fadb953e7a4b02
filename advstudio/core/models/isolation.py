"""Try a model file's code in a child process, where an endless loop or a native crash cannot
hang or take down the caller (the window).

TorchScript, torch.export (``.pt2``) and ONNX files carry code: TorchScript runs it on load
(``__setstate__``) and every format on each forward pass. :func:`load_user_model_job` first
loads such a file in a child process started with multiprocessing's ``spawn`` (a fresh
interpreter: no Qt, no inherited threads; the frozen app routes it through
``multiprocessing.freeze_support``). The child runs the very loader the app uses,
:func:`~advstudio.core.models.user.load_user_model`, probe forward passes included, and reports
back in JSON messages: the parent unpickles nothing the child sends. The parent times the child's
start (importing PyTorch), the load and each forward pass; past its limit the child is killed
and :class:`~advstudio.core.errors.ModelHangError` says so; a child that dies (SIGSEGV, SIGABRT)
gives :class:`~advstudio.core.errors.ModelCrashError`. The waiting is a job
(:mod:`~advstudio.core.jobs`) that yields between polls, so cancelling it (closing the
generator) kills the child at once; time the job spends paused does not count.

Only when the child succeeded is the file loaded in the caller, without running a forward pass
(``probed=True``). Everything after that runs in the caller: predictions and attacks call the
model in-process, so a model that loops or crashes only on some inputs is not caught here.

Weights-only formats (safetensors, a state_dict loaded into a named architecture) run no code
from the file and load in-process at once, as the built-ins and the zoo do: no child is started.

Starting the child costs an interpreter and a PyTorch import (about 1-2 s on an idle machine;
10 s measured on a loaded 2-core one), paid only for code-bearing files. As with any ``spawn``
child, a script that calls this must guard its top level with ``if __name__ == "__main__":``
(the app, the CLI, pytest and notebooks do); without it the child exits at once, reported as a
crash with exit code 1.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from advstudio.core import errors
from advstudio.core.errors import ModelCrashError, ModelHangError, ModelLoadError
from advstudio.core.jobs import Job, Progress
from advstudio.core.models.card import MissingCardError, ModelCard
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.probe import ProbeResult
from advstudio.core.models.sniff import sniff
from advstudio.core.models.user import load_user_model

CODE_FORMATS = frozenset({"torchscript", "export", "onnx"})
"""Formats whose file holds code that runs on load or forward: probed in a child process."""
PROBE_TIMEOUT_S = 30.0
"""The longest the child may take to load the file or to run one forward pass."""
STARTUP_TIMEOUT_S = 180.0
"""The longest the child may take to start (spawn an interpreter and import PyTorch)."""
POLL_S = 0.1
"""How often the waiting job yields, i.e. how soon a cancel kills the child."""
_KILL_WAIT_S = 5.0


def runs_code(path: str | Path) -> bool:
    """Whether loading or calling ``path``'s model runs code from the file."""
    return sniff(Path(path)) in CODE_FORMATS


def child_main(conn: Any, request: dict[str, Any]) -> None:
    """The child process: load ``request["path"]`` as the app does and say how it went."""

    def send(event: str, **fields: Any) -> None:
        conn.send_bytes(json.dumps({"event": event, **fields}).encode())

    try:
        import torch  # noqa: F401 - the slow part of starting, before "ready"

        from advstudio.core.models import probe

        send("ready")
        with probe.watching_forwards(lambda what, shape: send(what, shape=list(shape))):
            load_user_model(
                request["path"], request.get("architecture"), "cpu", request.get("card")
            )
        send("done")
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        send("error", **_describe(exc))
    finally:
        conn.close()


def _describe(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, MissingCardError):
        out["missing"] = list(exc.missing)
        out["card_path"] = str(exc.card_path)
        out["probe"] = asdict(exc.probe) if exc.probe is not None else None
    return out


def _rebuild(message: dict[str, Any]) -> BaseException:
    """The child's exception, rebuilt from plain values: the core's own error types keep
    their type (a missing card its fields and probe), anything else becomes a ModelLoadError."""
    kind, text = str(message.get("type", "")), str(message.get("message", ""))
    if kind == "MissingCardError":
        found = message.get("probe")
        probe = None
        if isinstance(found, dict):
            probe = ProbeResult(
                tuple(found["input_shape"]) if found["input_shape"] else None,
                found["num_classes"],
                tuple(tuple(s) for s in found["tried"]),
                tuple(found["errors"]),
            )
        return MissingCardError(
            text, tuple(message.get("missing", ())), Path(message.get("card_path", "")), probe
        )
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.AdvStudioError):
        try:
            return cls(text)
        except TypeError:  # an error type whose constructor takes more
            pass
    builtin = _OS_ERRORS.get(kind)
    if builtin is not None:
        return builtin(text)
    return ModelLoadError(f"{kind}: {text}" if text else kind)


_OS_ERRORS = {
    cls.__name__: cls
    for cls in (OSError, FileNotFoundError, PermissionError, IsADirectoryError, MemoryError)
}


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}" if exitcode is not None else "no exit code"


def probe_in_child(
    path: str | Path,
    architecture: str | None = None,
    card: ModelCard | dict | None = None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    target: Any = None,
) -> Job[None]:
    """Load ``path`` (with its probe forward passes) in a child process. Returns when the child
    loaded it; raises the child's error, :class:`ModelHangError` past a time limit or
    :class:`ModelCrashError` when the child dies. ``target`` replaces :func:`child_main` (tests)."""
    path = Path(path)
    name = path.name
    limit = f"{timeout_s:g}"
    request = {
        "path": str(path),
        "architecture": architecture,
        "card": card.to_dict() if isinstance(card, ModelCard) else card,
    }
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=target or child_main,
        args=(send, request),
        name=f"advstudio-probe {name}",
        daemon=True,
    )
    process.start()
    send.close()  # only the child's end stays open: its death reads as EOF here
    try:
        phase = "start"
        text = f"Starting a separate process to try {name}"
        yield Progress(0, 0, text)
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if receive.poll(POLL_S):
                try:
                    message = json.loads(receive.recv_bytes())
                except (EOFError, OSError):  # the child died without a word
                    process.join(_KILL_WAIT_S)
                    raise ModelCrashError(
                        f"the model {name} crashed the process that tried it "
                        f"({_how_it_died(process.exitcode)}); it was not loaded"
                    ) from None
                event = message.get("event")
                if event == "done":
                    return
                if event == "error":
                    raise _rebuild(message)
                if event == "start":
                    phase = "forward"
                    shape = "×".join(map(str, message.get("shape", ())))
                    text = f"Trying a forward pass of {name} on {shape} (separate process)"
                else:  # "ready", or a forward pass returned
                    phase = "load"
                    text = f"Loading {name} in a separate process"
                deadline = time.monotonic() + timeout_s
            elif time.monotonic() > deadline:
                raise ModelHangError(
                    f"the model {name} did not return from a forward pass within {limit} s "
                    "(an endless loop?); the process trying it was stopped"
                    if phase == "forward"
                    else f"the model {name} did not finish loading within {limit} s (its "
                    "code may loop forever); the process trying it was stopped"
                    if phase == "load"
                    else f"the separate process to try {name} did not start within "
                    f"{startup_timeout_s:g} s (is the computer very busy?)"
                )
            yielded = time.monotonic()
            yield Progress(0, 0, text)  # between polls: a cancel closes the job here
            deadline += time.monotonic() - yielded  # a paused consumer's time is not the model's
    finally:
        if process.is_alive():
            process.kill()
        process.join(_KILL_WAIT_S)
        receive.close()


def load_user_model_job(
    path: str | Path,
    architecture: str | None = None,
    device: str | Any = "cpu",
    card: ModelCard | dict | None = None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    target: Any = None,
) -> Job[Classifier]:
    """:func:`~advstudio.core.models.user.load_user_model` as a job, the file's code tried in a
    child process first (:func:`probe_in_child`) when its format carries code."""
    path = Path(path)
    if runs_code(path):
        yield from probe_in_child(path, architecture, card, timeout_s=timeout_s, target=target)
        return load_user_model(path, architecture, device, card, probed=True)
    return load_user_model(path, architecture, device, card)
