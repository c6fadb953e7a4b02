"""Headless runner: ``advstudio-run CONFIG.toml`` runs any job kind with the same core code the
app uses, with a progress bar on the terminal.

The config file names the kind and its settings::

    kind = "sweep"
    model = "digits-cnn"
    attacks = ["fgsm", "pgd"]
    epsilons = [0, 0.1, 0.2, 0.3]

A model file without a card beside it takes the card's fields inline, in a ``[card]`` table
(``[target_card]`` for a detector's target, ``[adv_card]`` for a poisoning surrogate); the run
records them, so a rerun loads the model the same way::

    model = "file:cifar_net.pt2"
    [card]
    input_shape = [3, 32, 32]
    classes = "cifar10"

Every run is recorded in the run store (``--store DIR``, default: the user data folder, see
:func:`advstudio.core.runs.default_store_root`) unless ``--no-record`` is given, exactly as the
app records its jobs: a training checkpoints into its run folder and keeps its trained weights
there (``artifacts/model.pt`` and its card ``model.json``; a GAN's ``generator.pt``), and the
printed summary names its ``run_id`` and folder. ``advstudio-run --resume RUN_ID`` continues a
killed or cancelled training from its last checkpoint, as the Runs tab's Resume does.

Under ``torchrun`` the training jobs run data-parallel, one process per GPU (NCCL) or CPU share
(gloo), and the sweep and robust accuracy shard their images over the processes, see
:mod:`advstudio.core.distributed`::

    torchrun --nproc-per-node 4 -m advstudio.cli config.toml

Only rank 0 records the run, draws the progress bar, writes ``--out`` and prints the summary;
the other ranks run silently (their errors are still printed, with their rank).

Exit codes: 0 done, 1 the job failed, 2 bad command line or config, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from advstudio.core.errors import ConfigError, DeviceError, ModelLoadError, explain

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressBar:
    """A one-line terminal bar, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self._last = 0.0
        self._t0 = time.monotonic()
        self.tty = stream.isatty()

    def update(self, done: int, total: int, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if total > 0:
            frac = min(1.0, done / total)
            bar = "#" * round(frac * self.width)
            elapsed = now - self._t0
            eta = f" ETA {elapsed * (1 - frac) / frac:4.0f}s" if frac > 0 else ""
            line = f"[{bar:<{self.width}}] {frac * 100:5.1f}%{eta} {message}"
        else:
            line = f"[{'working':^{self.width}}] {message}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
        elif force:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


_PARSERS = {".toml": "TOML", ".json": "JSON"}


def read_config_file(path: Path) -> dict[str, Any]:
    """The values of a ``.toml`` or ``.json`` config; :class:`ConfigError` with one line for
    anything else (a missing or unreadable file, another format, bytes that are not UTF-8, a
    syntax error, a file that does not name its kind)."""
    kind_of_file = _PARSERS.get(path.suffix.lower())
    if kind_of_file is None:
        raise ConfigError(
            f"{path.name}: configs are .toml or .json files, not "
            f"{path.suffix or 'files without a suffix'}"
        )
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file (a folder, pipe or device)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text) if kind_of_file == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path.name} is not valid {kind_of_file}: {exc}") from exc
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(
            f"{path.name} must set kind = one of the job kinds (see advstudio-run --list)"
        )
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="advstudio-run",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Exit codes: 0 done, 1 the job failed, 2 bad command line or config, "
        "130 interrupted (Ctrl+C). `advstudio-run --list` names the job kinds.",
    )
    parser.add_argument("config", nargs="?", type=Path, help="a .toml or .json job config")
    parser.add_argument("--device", help="override the config's device (auto, cpu, cuda, mps)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for result.json, metrics.jsonl and the "
        "final preview images (a GAN's samples.png)",
    )
    parser.add_argument("--dry-run", action="store_true", help="one tiny step (smoke test)")
    parser.add_argument(
        "--list", action="store_true", help="list the job kinds and the attacks, and exit"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--store", type=Path, help="run store to record the run in (default: the user data folder)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not record the run")
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a recorded training from its last checkpoint, as a new "
        "run (instead of a config file; see the Runs tab)",
    )
    args = parser.parse_args(argv)

    from advstudio.core.jobkinds import JOB_KINDS, build_config

    if args.list:
        for kind in JOB_KINDS.values():
            print(f"{kind.name:10} {kind.description}")
        from advstudio.core.attacks.catalogue import format_list

        print("\n" + format_list())
        return EXIT_OK
    if (args.config is None) == (args.resume is None) or (args.resume and args.no_record):
        parser.print_usage(sys.stderr)
        problem = (
            "--resume records a new run: it cannot go with --no-record"
            if args.no_record
            else "give a config file or --resume RUN_ID (or --list)"
        )
        print(f"advstudio-run: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from advstudio.core import distributed

    store, resume_from = None, None
    if args.resume is not None:
        store = _open_store(args.store)
        if store is None:
            return EXIT_USAGE
    try:
        if store is not None:
            kind, values, resume_from = _resumed_run(store, args.resume)
        else:
            values = read_config_file(args.config)
            kind = values.pop("kind")
        for key in ("device", "seed"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
        if args.dry_run:
            values["dry_run"] = True
        config = build_config(kind, values)
        _, run = JOB_KINDS[kind].load()
        _check_device(config)
        _check_model(config)
    except (ConfigError, DeviceError) as exc:
        print(f"advstudio-run: bad config: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if distributed.env_world().size > 1:  # under torchrun: join the others
        try:
            device = distributed.init(getattr(config, "device", "cpu"))
        except ConfigError as exc:
            print(f"advstudio-run: bad config: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if hasattr(config, "device"):
            config = dataclasses.replace(config, device=device)
    try:
        rank = distributed.world().rank
        if not args.no_record and rank == 0 and store is None:
            store = _open_store(args.store)
            if store is None:
                return EXIT_USAGE
        code = run_job(
            kind,
            config,
            run,
            args.out,
            quiet=args.quiet,
            store=store,
            rank=rank,
            resume_from=resume_from,
        )
        if code == EXIT_OK:
            distributed.barrier()  # nobody leaves while another is still writing its results
        return code
    finally:
        distributed.destroy()


def _open_store(root: Path | None) -> Any:
    """The ``RunStore`` at ``root`` (default: the user data folder), or None after saying why
    it cannot be used."""
    from advstudio.core.runs import RunStore

    try:
        return RunStore.open(root)
    except OSError as exc:
        print(
            f"advstudio-run: cannot open the run store: {exc} "
            "(choose one with --store DIR, or run with --no-record)",
            file=sys.stderr,
        )
        return None


def _resumed_run(store: Any, run_id: str) -> tuple[str, dict[str, Any], Path]:
    """``(kind, config values, checkpoint)`` to continue a recorded run, as the Runs tab's
    Resume does; ConfigError if there is no such run or it has nothing to resume from."""
    from advstudio.core.runs import CHECKPOINT, RunNotFoundError

    try:
        if not store.resumable(run_id):
            raise ConfigError(
                f"run {run_id} has no checkpoint to resume from (only trainings "
                "stopped after their first checkpoint have one)"
            )
        kind, values = store.rerun_config(run_id)
    except RunNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    return kind, dict(values), store.run_path(run_id) / "artifacts" / CHECKPOINT


def _check_device(config: Any) -> None:
    """Refuse a device this machine lacks before anything is recorded (DeviceError). Under
    torchrun the device is each rank's own, chosen by :func:`distributed.init`."""
    from advstudio.core import distributed
    from advstudio.core.devices import pick_device

    if hasattr(config, "device") and distributed.env_world().size <= 1:
        pick_device(config.device)


MODEL_FIELDS = (("model", "card"), ("target", "target_card"), ("adv_model", "adv_card"))
"""A job config's model fields and the card fields beside them."""


def _check_model(config: Any) -> None:
    """Refuse a ``model`` no one has (a typo, a moved file) or a model file without a card
    (naming the missing fields) before a run is recorded for it; whether a model that exists
    can be loaded stays the registry's business, when it runs."""
    for field, card_field in MODEL_FIELDS:
        key = getattr(config, field, None)
        if isinstance(key, str):
            _check_model_key(key, getattr(config, card_field, None), card_field)


def _check_model_key(key: str, card: Any, card_field: str) -> None:
    if key.startswith(("torchvision:", "memory:")):  # the config checked a memory: key
        return
    if key.startswith("file:"):
        path = Path(key[5:])
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        from advstudio.core.models.card import MissingCardError
        from advstudio.core.models.user import check_card

        try:
            check_card(path, card)
        except MissingCardError as exc:
            found = f"; {exc.probe.describe()}" if exc.probe is not None else ""
            raise ConfigError(
                f"model file {path.name} has no model card giving {', '.join(exc.missing)}: "
                f"add {'them' if len(exc.missing) > 1 else 'it'} to the config's "
                f'[{card_field}] table (input_shape = [C, H, W], classes = "cifar10" or a '
                "list of names; mean and std only if the model expects normalised input; "
                f"architecture for a weights file) or write {exc.card_path.name} beside the "
                f"model{found}"
            ) from None
        except ModelLoadError:
            return  # a file that cannot load for another reason: the job says why, recorded
        return
    from advstudio.core.models.registry import list_models

    known = [spec.key for spec in list_models()]
    if key not in known:
        raise ConfigError(f"unknown model {key!r}; known: {', '.join(known)}")


def _device_name(config: Any) -> str:
    """The device the job will run on (``auto`` resolved), for the run history."""
    preference = getattr(config, "device", "") or "auto"
    try:
        from advstudio.core.devices import pick_device

        return str(pick_device(preference))
    except Exception:  # noqa: BLE001 - the job itself reports a bad device
        return preference


def run_job(
    kind: str,
    config: Any,
    run,
    out: Path | None,
    quiet: bool = False,
    store: Any = None,
    rank: int = 0,
    resume_from: Path | None = None,
) -> int:
    """Drive ``run(config)`` to the end; record it in ``store`` (a ``RunStore``) if given, the
    way the app records its jobs (:func:`advstudio.core.runs.wrap.recorded`): a training
    checkpoints into its run folder, ``resume_from`` (a checkpoint) continues it, and the
    trained weights are kept in ``artifacts/``.

    ``rank`` > 0 (a data-parallel run's other processes): no output but error messages;
    ``out`` and ``store`` are ignored, and the job runs with rank 0's config (which names the
    checkpoint rank 0 resumes from)."""
    from advstudio.core import distributed
    from advstudio.core.atomic import atomic_write_bytes
    from advstudio.core.jobs import drive
    from advstudio.core.runs.files import plain
    from advstudio.core.runs.models import keep_models
    from advstudio.core.runs.recorder import LastImages
    from advstudio.core.runs.wrap import recorded

    prog = "advstudio-run" if rank == 0 else f"advstudio-run (rank {rank})"
    if rank:
        quiet, out, store = True, None, None
    bar = None if quiet else ProgressBar()
    images = LastImages()  # for --out
    recorders: list[Any] = []  # the run's Recorder, once its folder exists

    def shared(job_config: Any):
        """The job, with rank 0's config on every process (a single one: its own)."""
        return run(distributed.broadcast_object(job_config))

    with contextlib.ExitStack() as stack:
        metrics_file = None
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
                metrics_file = stack.enter_context(open(out / "metrics.jsonl", "w"))
            except OSError as exc:
                print(
                    f"{prog}: cannot write to --out {out}: {explain(_write_fault(exc, out))}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
        if bar is not None:
            stack.callback(bar.close)
        on_event = _event_printer(bar, metrics_file, images if out is not None else None, quiet)
        if store is None:
            job = shared(config)
        else:
            job = recorded(
                store,
                kind,
                config,
                shared,
                device=_device_name(config),
                resume_from=resume_from,
                on_start=recorders.append,
            )
        try:
            result = drive(job, on_event).result
        except KeyboardInterrupt as exc:
            with contextlib.suppress(KeyboardInterrupt):
                job.throw(exc)  # the job ends at its yield; its run is recorded as interrupted
            _report(recorders, f"{prog}: interrupted")
            return EXIT_INTERRUPTED
        except (ConfigError, DeviceError, ModelLoadError) as exc:  # the config names them
            _report(recorders, f"{prog}: bad config: {exc}")
            return EXIT_USAGE
        except OSError as exc:
            if store is not None and not recorders:
                print(
                    f"{prog}: cannot record the run in {store.root}: {exc} "
                    "(run with --no-record to skip recording)",
                    file=sys.stderr,
                )
            else:
                _report(recorders, f"{prog}: {kind} failed: {explain(exc)}")
            return EXIT_FAILED
        except Exception as exc:  # noqa: BLE001 - one clear line, then the exit code
            _report(recorders, f"{prog}: {kind} failed: {explain(exc)}")
            return EXIT_FAILED
    if rank:
        return EXIT_OK
    summary: dict[str, Any] = {"kind": kind}
    if recorders:
        recorder = recorders[0]
        summary.update(run_id=recorder.run_id, run_folder=str(recorder.path))
        result = store.read_result(recorder.run_id)  # as recorded: weights named by their file
    elif out is not None:
        result = keep_models(result, out)
    else:
        result = plain(result)  # weights are kept nowhere: --no-record and no --out
    summary.update(config=plain(config), result=result)
    text = json.dumps(summary, indent=2)
    print(text)
    if out is not None:
        try:
            images.save(out)
            atomic_write_bytes(out / "result.json", (text + "\n").encode())
        except OSError as exc:  # the run itself is recorded: only --out's copy is missing
            print(
                f"{prog}: the {kind} run finished but --out {out} could not be written: "
                f"{explain(_write_fault(exc, out))}",
                file=sys.stderr,
            )
            return EXIT_FAILED
    return EXIT_OK


def _write_fault(exc: OSError, folder: Path) -> OSError:
    """A full disk or read-only folder as one clear error; other errors as they are."""
    from advstudio.core.atomic import write_fault

    return write_fault(exc, folder) or exc


def _event_printer(
    bar: ProgressBar | None, metrics_file: TextIO | None, images: Any, quiet: bool
) -> Callable[[Any], None]:
    """What the terminal and ``--out`` show of each event (the run store records its own)."""
    from advstudio.core.jobs import Log, Metrics, Preview, Progress
    from advstudio.core.runs.files import metrics_line

    def on_event(event: Any) -> None:
        if isinstance(event, Progress) and bar is not None:
            bar.update(event.done, event.total, event.message, force=event.done >= event.total > 0)
        elif isinstance(event, Metrics) and metrics_file is not None:
            metrics_file.write(metrics_line(event.step, event.values) + "\n")
        elif isinstance(event, Log) and not quiet:
            print(event.text, file=sys.stderr)
        elif isinstance(event, Preview) and images is not None:
            images.add(event)

    return on_event


def _report(recorders: list[Any], message: str) -> None:
    """The last word on stderr after a failure, and where the run's record is."""
    lines = [
        f"advstudio-run: run {rec.run_id} recorded as {rec.status} in {rec.path}"
        for rec in recorders
    ]
    print("\n" + "\n".join([*lines, message]), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
