"""Cost of recording a run in the run store, against running the same job unrecorded.

Run: ``uv run python benchmarks/bench_run_store.py [--steps 20000] [--repeats 5] [--root DIR]``

1. A fake job that does no work of its own and emits one ``Metrics`` (3 values) and one
   ``Progress`` per step, ``--steps`` steps: the worst case, where recording is all there is.
   Reported: the ratio and the recording cost per Metrics event (microseconds).
2. A real ``evaluate`` job on the 1,000 bundled test digits with batch size 10 (100 Metrics
   events), on the CPU with ``--threads`` torch threads: the ratio a user would see.

"Recorded" includes creating the run (folder, config.json, meta.json, index row, with fsyncs),
buffered metrics writes and finishing it (result.json, meta.json, index). The store lives in a
temporary folder on the system's temp disk unless ``--root`` says otherwise (fsync cost depends
on the disk). Medians over ``--repeats`` runs after a warm-up, the contenders interleaved so that
load from other processes hits both alike. Ratios only: no absolute targets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from advstudio.core.jobs import Event, Metrics, Progress, drive
from advstudio.core.runs import RunStore


def fake_job(steps: int) -> Iterator[Event]:
    loss = 1.0
    for step in range(steps):
        loss *= 0.9999
        yield Metrics(step, {"loss": loss, "accuracy": 1.0 - loss, "lr": 1e-3})
        yield Progress(step + 1, steps)
    return {"loss": loss, "steps": steps}


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def plain_and_recorded(
    store: RunStore, kind: str, config: dict, make_job: Callable[[], Iterator[Event]]
) -> dict[str, Callable[[], object]]:
    def plain() -> object:
        return drive(make_job()).result

    def recorded() -> object:
        with store.record(kind, config, device="cpu") as rec:
            result = drive(make_job(), on_event=rec.log_event).result
            rec.finish(result)
        return result

    return {"plain": plain, "recorded": recorded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, help="where to put the temporary store")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for evaluate (1: steadier on a shared machine)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.root, prefix="advstudio-bench-") as tmp:
        store = RunStore.open(tmp)
        print(f"store in {tmp} (cpu count {os.cpu_count()})")

        fns = plain_and_recorded(store, "fake", {"steps": args.steps}, lambda: fake_job(args.steps))
        fns["empty run"] = plain_and_recorded(store, "empty", {}, lambda: fake_job(0))["recorded"]
        t = interleaved_medians(fns, args.repeats)
        per_event = (t["recorded"] - t["plain"] - t["empty run"]) / args.steps * 1e6
        print(
            f"fake job, {args.steps:,} steps (Metrics + Progress each, no work): "
            f"plain {t['plain'] * 1e3:.1f} ms, recorded {t['recorded'] * 1e3:.1f} ms, "
            f"ratio {t['recorded'] / t['plain']:.2f}"
        )
        print(
            f"  = {t['empty run'] * 1e3:.1f} ms per run (create + finish, with fsyncs) + "
            f"{per_event:.2f} us per Metrics event"
        )
        steps_written = len(store.read_metrics(store.list_runs(kind="fake", limit=1)[0].id))
        assert steps_written == args.steps, steps_written

        import torch

        from advstudio.core.evaluate import EvaluateConfig, evaluate
        from advstudio.core.jobkinds import config_to_dict

        torch.set_num_threads(args.threads)

        config = EvaluateConfig(batch_size=10, device="cpu")
        fns = plain_and_recorded(
            store, "evaluate", config_to_dict(config), lambda: evaluate(config)
        )
        t = interleaved_medians(fns, args.eval_repeats)
        print(
            f"evaluate, 1,000 digits, batch 10 (100 Metrics events), {args.threads} torch "
            f"thread(s): plain "
            f"{t['plain'] * 1e3:.0f} ms, recorded {t['recorded'] * 1e3:.0f} ms, "
            f"ratio {t['recorded'] / t['plain']:.3f}"
        )


if __name__ == "__main__":
    main()
