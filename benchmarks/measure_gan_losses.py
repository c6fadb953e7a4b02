"""Sample quality of GAN settings on the bundled digits after a fixed number of steps.

    nice -n 10 uv run python benchmarks/measure_gan_losses.py --steps 500 \
        --set loss=hinge,spectral_norm=true,width=32 [--set ...] [--seeds 0 1 2] \
        [--eval-every 100] [--threads 2] [--out results.jsonl]

Each ``--set`` is one run of ``train_gan`` per seed (other fields: the defaults, overridden by
``--base``), judged by the digit CNN at the end and every ``--eval-every`` steps (1,000 samples:
classes covered, class entropy, Fréchet distance; a conditional GAN's per-class accuracy too).
Prints one JSON line per run, its evaluations each with the seconds since the job started
(``t``: data, judge and evaluations included, not the import of torch), so the time to a
target (10 of 10 classes, a Fréchet distance under 400) can be read off; nothing is asserted,
the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from advstudio.core.gan import GanConfig
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Metrics, drive

KEYS = ("classes_covered", "class_entropy", "frechet", "class_accuracy")


def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fields(spec: str) -> dict:
    return {k: _value(v) for k, v in (item.split("=", 1) for item in spec.split(",") if item)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--base", default="")
    ap.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="also judge every N steps (0 = only at the end); all evaluations are printed",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--samples", default="", help="save each run's final fixed-noise grid as this PNG"
    )
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.sets or [""]:
        for seed in args.seeds:
            fields = {**_fields(args.base), **_fields(spec)}
            run(fields, seed, args)


def run(fields: dict, seed: int, args) -> None:
    config = GanConfig(
        steps=args.steps,
        eval_every=args.eval_every or args.steps,
        preview_rate=0.0,
        seed=seed,
        device="cpu",
        **fields,
    )
    history: list[dict] = []
    t0 = time.perf_counter()

    def on_event(event) -> None:
        if isinstance(event, Metrics) and "frechet" in event.values:
            values = {k: round(v, 3) for k, v in event.values.items() if k in KEYS}
            history.append({"step": event.step, "t": round(time.perf_counter() - t0, 1), **values})

    out = drive(train_gan(config), on_event=on_event)
    row = {
        "set": fields,
        "seed": seed,
        "steps": args.steps,
        "wall_s": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        **{k: round(v, 3) for k, v in out.result.evaluation.items()},
        "history": history,
    }
    print(json.dumps(row), flush=True)
    if args.samples:
        from advstudio.core.images import save_png

        grid = out.result.samples  # (H, W) grey or (H, W, 3)
        save_png(grid[..., None] if grid.ndim == 2 else grid, args.samples)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
