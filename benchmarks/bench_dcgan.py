"""DCGAN training speed: advstudio's ``train_gan`` job (driven by ``drive``, with its per-step
metrics, progress events and throttled previews) next to a plain PyTorch loop of the same
networks, batch and algorithm, measured in the same process, interleaved.

    uv run python benchmarks/bench_dcgan.py [--steps 30] [--batch 64] [--repeats 3] [--threads N]

Prints steps/s of each, and the ratio of seconds per step job / plain (target: <= 1.10).
Evaluation (1,000 samples judged by the digit CNN) is switched off for the ratio; its cost per
call is printed separately. Nothing is asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from advstudio.core.data import load_digits
from advstudio.core.gan import GanConfig
from advstudio.core.gan.evaluation import evaluate_digit_generator, real_digit_stats
from advstudio.core.gan.networks import build_networks
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Metrics, drive


def plain_loop(steps: int, warmup: int, batch: int, width: int, seed: int = 0) -> float:
    """Seconds per step of a textbook loop (pytorch/examples dcgan order, fresh noise for G)."""
    torch.manual_seed(seed)
    c = GanConfig(width=width)  # the job's defaults: width, learning rates, betas
    netG, netD = build_networks("dcgan", 100, 1, 28, width=width)
    optG = torch.optim.Adam(netG.parameters(), lr=c.lr_g, betas=(c.beta1, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=c.lr_d, betas=(c.beta1, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    x = load_digits("train")[0] * 2 - 1
    order, cursor = torch.randperm(len(x)), 0
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        if cursor + batch > len(x):
            order, cursor = torch.randperm(len(x)), 0
        real = x[order[cursor : cursor + batch]]
        cursor += batch
        netD.zero_grad()
        out = netD(real)
        err_real = criterion(out, torch.ones_like(out))
        err_real.backward()
        d_x = torch.sigmoid(out).mean().item()
        with torch.no_grad():
            fake = netG(torch.randn(batch, 100))
        out = netD(fake)
        err_fake = criterion(out, torch.zeros_like(out))
        err_fake.backward()
        d_g_z1 = torch.sigmoid(out).mean().item()
        optD.step()
        netG.zero_grad()
        out = netD(netG(torch.randn(batch, 100)))
        err_g = criterion(out, torch.ones_like(out))
        err_g.backward()
        d_g_z2 = torch.sigmoid(out).mean().item()
        optG.step()
        _ = (err_real + err_fake).item(), err_g.item(), d_x, d_g_z1, d_g_z2
    return (time.perf_counter() - t0) / steps


def job_loop(
    steps: int, warmup: int, batch: int, width: int, preview_rate: float
) -> tuple[float, int]:
    """Seconds per step of ``train_gan`` through ``drive``, timed between the Metrics events of
    step ``warmup`` and the last step (start-up and the final grid excluded); and the number of
    previews it sent."""
    stamps: dict[int, float] = {}
    previews = 0

    def on_event(event) -> None:
        nonlocal previews
        if isinstance(event, Metrics):
            stamps[event.step] = time.perf_counter()
        elif event.__class__.__name__ == "Preview":
            previews += 1

    cfg = GanConfig(
        arch="dcgan",
        width=width,
        batch_size=batch,
        steps=warmup + steps,
        eval_every=0,
        preview_rate=preview_rate,
    )
    drive(train_gan(cfg), on_event=on_event)
    return (stamps[warmup + steps] - stamps[warmup]) / steps, previews


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=GanConfig.width, help="the DCGAN's width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--preview-rate", type=float, default=GanConfig.preview_rate)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"DCGAN 28x28 width {args.width}, batch {args.batch}, {args.steps} timed steps after "
        f"{args.warmup} warm-up steps, {args.repeats} interleaved repeats, "
        f"{torch.get_num_threads()} torch threads, previews at most {args.preview_rate:g}/s"
    )
    plain, job = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(args.steps, args.warmup, args.batch, args.width))
        sec, previews = job_loop(args.steps, args.warmup, args.batch, args.width, args.preview_rate)
        job.append(sec)
        print(
            f"  repeat {r + 1}: plain {plain[-1] * 1000:.0f} ms/step, "
            f"train_gan {job[-1] * 1000:.0f} ms/step ({previews} previews)"
        )
    p, j = statistics.median(plain), statistics.median(job)
    print(f"plain PyTorch loop: {1 / p:.2f} steps/s ({p * 1000:.0f} ms/step, median)")
    print(f"train_gan via drive: {1 / j:.2f} steps/s ({j * 1000:.0f} ms/step, median)")
    print(f"ratio time per step train_gan / plain: {j / p:.3f} (target <= 1.10)")

    g, _ = build_networks("dcgan", 100, 1, 28, width=args.width)
    real_digit_stats()  # cached once per process
    t0 = time.perf_counter()
    evaluate_digit_generator(g, 100)
    print(
        f"one evaluation (1,000 samples, classes + Frechet): {time.perf_counter() - t0:.2f} s "
        f"(every eval_every = {GanConfig.eval_every} steps by default)"
    )


if __name__ == "__main__":
    main()
