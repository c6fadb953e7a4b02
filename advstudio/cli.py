"""Headless runner: ``advstudio-run CONFIG.toml`` runs any job kind with the same core code the
app uses, with a progress bar on the terminal.

The config file names the kind and its settings::

    kind = "sweep"
    model = "digits-cnn"
    attacks = ["fgsm", "pgd"]
    epsilons = [0, 0.1, 0.2, 0.3]

Every run is recorded in the run store (``--store DIR``, default: the user data folder, see
:func:`advstudio.core.runs.default_store_root`) unless ``--no-record`` is given; the printed
summary names its ``run_id``.

Under ``torchrun`` the training jobs run data-parallel, one process per GPU (NCCL) or CPU share
(gloo), see :mod:`advstudio.core.distributed`::

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
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, TextIO

from advstudio.core.errors import ConfigError, explain

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


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path.name} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(f"{path.name} must set kind = one of the job kinds "
                          "(see advstudio-run --list)")
    return data


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return f"<{type(value).__name__}>"  # tensors, state_dicts: not part of the summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="advstudio-run", description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Exit codes: 0 done, 1 the job failed, 2 bad command line or config, "
               "130 interrupted (Ctrl+C). `advstudio-run --list` names the job kinds.")
    parser.add_argument("config", nargs="?", type=Path, help="a .toml or .json job config")
    parser.add_argument("--device", help="override the config's device (auto, cpu, cuda, mps)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--out", type=Path, help="folder for result.json, metrics.jsonl and the "
                        "final preview images (a GAN's samples.png)")
    parser.add_argument("--dry-run", action="store_true", help="one tiny step (smoke test)")
    parser.add_argument("--list", action="store_true",
                        help="list the job kinds and the attacks, and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--store", type=Path,
                        help="run store to record the run in (default: the user data folder)")
    parser.add_argument("--no-record", action="store_true", help="do not record the run")
    args = parser.parse_args(argv)

    from advstudio.core.jobkinds import JOB_KINDS, build_config

    if args.list:
        for kind in JOB_KINDS.values():
            print(f"{kind.name:10} {kind.description}")
        from advstudio.core.attacks.catalogue import format_list

        print("\n" + format_list())
        return EXIT_OK
    if args.config is None:
        parser.print_usage(sys.stderr)
        print("advstudio-run: error: give a config file (or --list)", file=sys.stderr)
        return EXIT_USAGE
    try:
        values = read_config_file(args.config)
        kind = values.pop("kind")
        for key in ("device", "seed"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
        if args.dry_run:
            values["dry_run"] = True
        config = build_config(kind, values)
        _, run = JOB_KINDS[kind].load()
    except ConfigError as exc:
        print(f"advstudio-run: bad config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from advstudio.core import distributed

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
        store = None
        if not args.no_record and rank == 0:
            from advstudio.core.runs import RunStore

            try:
                store = RunStore.open(args.store)
            except OSError as exc:
                print(f"advstudio-run: cannot open the run store: {exc} "
                      "(choose one with --store DIR, or run with --no-record)", file=sys.stderr)
                return EXIT_USAGE
        code = run_job(kind, config, run, args.out, quiet=args.quiet, store=store, rank=rank)
        if code == EXIT_OK:
            distributed.barrier()  # nobody leaves while another is still writing its results
        return code
    finally:
        distributed.destroy()


def _device_name(config: Any) -> str:
    """The device the job will run on (``auto`` resolved), for the run history."""
    preference = getattr(config, "device", "") or "auto"
    try:
        from advstudio.core.devices import pick_device

        return str(pick_device(preference))
    except Exception:  # noqa: BLE001 - the job itself reports a bad device
        return preference


def run_job(kind: str, config: Any, run, out: Path | None, quiet: bool = False,
            store: Any = None, rank: int = 0) -> int:
    """Drive ``run(config)`` to the end; record it in ``store`` (a ``RunStore``) if given.

    ``rank`` > 0 (a data-parallel run's other processes): no output but error messages;
    ``out`` and ``store`` are ignored."""
    from advstudio.core.jobkinds import config_to_dict
    from advstudio.core.jobs import Log, Metrics, Preview, Progress
    from advstudio.core.runs.recorder import LastImages

    prog = "advstudio-run" if rank == 0 else f"advstudio-run (rank {rank})"
    if rank:
        quiet, out, store = True, None, None
    bar = None if quiet else ProgressBar()
    metrics_file = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        metrics_file = open(out / "metrics.jsonl", "w")
    recorder = None
    if store is not None:
        try:
            recorder = store.record(kind, config_to_dict(config), device=_device_name(config),
                                    seed=getattr(config, "seed", None))
        except OSError as exc:
            if metrics_file is not None:
                metrics_file.close()
            print(f"advstudio-run: cannot record the run in {store.root}: {exc} "
                  "(run with --no-record to skip recording)", file=sys.stderr)
            return EXIT_FAILED
    job = run(config)
    images = LastImages()  # for --out
    try:
        # the recorder marks the run failed/cancelled if an exception leaves this block
        with recorder if recorder is not None else contextlib.nullcontext():
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                if recorder is not None:
                    recorder.log_event(event)
                if isinstance(event, Progress) and bar is not None:
                    bar.update(event.done, event.total, event.message,
                               force=event.done >= event.total > 0)
                elif isinstance(event, Metrics) and metrics_file is not None:
                    metrics_file.write(
                        json.dumps({"step": event.step, **_jsonable(event.values)}) + "\n")
                elif isinstance(event, Log) and not quiet:
                    print(event.text, file=sys.stderr)
                elif isinstance(event, Preview) and out is not None:
                    images.add(event)
            if recorder is not None:
                recorder.finish(_jsonable(result))
    except KeyboardInterrupt:
        job.close()
        _report(recorder, f"{prog}: interrupted")
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        _report(recorder, f"{prog}: bad config: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one clear line, then the exit code
        _report(recorder, f"{prog}: {kind} failed: {explain(exc)}")
        return EXIT_FAILED
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    if rank:
        return EXIT_OK
    summary = {"kind": kind, "config": _jsonable(config), "result": _jsonable(result)}
    if recorder is not None:
        summary = {"kind": kind, "run_id": recorder.run_id, **summary}
    text = json.dumps(summary, indent=2)
    if out is not None:
        images.save(out)
        tmp = out / "result.json.part"
        tmp.write_text(text + "\n")
        tmp.replace(out / "result.json")
    print(text)
    return EXIT_OK


def _report(recorder: Any, message: str) -> None:
    """The last word on stderr after a failure, and where the run's record is."""
    lines = [] if recorder is None else [
        f"advstudio-run: run {recorder.run_id} recorded as {recorder.status} in {recorder.path}"]
    print("\n" + "\n".join([*lines, message]), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
