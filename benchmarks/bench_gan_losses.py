"""Speed of each GAN loss through the job: ``train_gan`` driven by ``drive`` (metrics,
progress, throttled previews) next to a plain PyTorch loop of the same networks, batch and loss,
written out by hand, measured in the same process, interleaved.

    uv run python benchmarks/bench_gan_losses.py [--steps 20] [--width 16] [--batch 64] \
        [--repeats 2] [--threads 1]

Prints ms per step of each and the ratio job / plain per loss (target: <= 1.05). WGAN-GP runs
one critic step per G step here, like the others, so the ratios compare like with like.
Nothing is asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from advstudio.core.data import load_digits
from advstudio.core.gan import GanConfig
from advstudio.core.gan.networks import build_networks
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Metrics, drive

LOSSES = ("non-saturating", "minimax", "least-squares", "hinge", "wgan-gp")


def _d_terms(loss: str, r: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if loss in ("non-saturating", "minimax"):
        return F.softplus(-r).mean(), F.softplus(f).mean()
    if loss == "least-squares":
        return 0.5 * ((r - 1) ** 2).mean(), 0.5 * (f**2).mean()
    if loss == "hinge":
        return F.relu(1 - r).mean(), F.relu(1 + f).mean()
    return -r.mean(), f.mean()


def _g_term(loss: str, f: torch.Tensor) -> torch.Tensor:
    return {
        "non-saturating": lambda: F.softplus(-f).mean(),
        "minimax": lambda: -F.softplus(f).mean(),
        "least-squares": lambda: 0.5 * ((f - 1) ** 2).mean(),
    }.get(loss, lambda: -f.mean())()


def plain_loop(loss: str, steps: int, warmup: int, batch: int, width: int) -> float:
    """Seconds per step of a hand-written loop (pytorch/examples' order, fresh noise for G)."""
    torch.manual_seed(0)
    wgan = loss == "wgan-gp"
    netG, netD = build_networks("dcgan", 100, 1, 28, width=width, d_batch_norm=not wgan)
    c = GanConfig()  # the job's learning rates and betas
    optG = torch.optim.Adam(netG.parameters(), lr=c.lr_g, betas=(c.beta1, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=c.lr_d, betas=(c.beta1, 0.999))
    x = load_digits("train")[0] * 2 - 1
    order, cursor, t0 = torch.randperm(len(x)), 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        if cursor + batch > len(x):
            order, cursor = torch.randperm(len(x)), 0
        real = x[order[cursor : cursor + batch]]
        cursor += batch
        netD.zero_grad()
        out_r = netD(real)
        err_r = _d_terms(loss, out_r, out_r)[0]
        err_r.backward()
        with torch.no_grad():
            fake = netG(torch.randn(batch, 100))
        out_f = netD(fake)
        err_f = _d_terms(loss, out_f, out_f)[1]
        err_f.backward()
        gp = torch.zeros(())
        if wgan:
            eps = torch.rand(batch, 1, 1, 1)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(netD(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            (10.0 * gp).backward()
        optD.step()
        netG.zero_grad()
        out = netD(netG(torch.randn(batch, 100)))
        err_g = _g_term(loss, out)
        err_g.backward()
        optG.step()
        torch.stack(
            [
                err_r + err_f,
                err_g,
                torch.sigmoid(out_r).mean(),
                torch.sigmoid(out_f).mean(),
                torch.sigmoid(out).mean(),
                gp,
            ]
        ).tolist()
    return (time.perf_counter() - t0) / steps


def job_loop(loss: str, steps: int, warmup: int, batch: int, width: int) -> float:
    """Seconds per step of ``train_gan`` through ``drive``, between the Metrics events of step
    ``warmup`` and the last step."""
    stamps: dict[int, float] = {}

    def on_event(event) -> None:
        if isinstance(event, Metrics):
            stamps[event.step] = time.perf_counter()

    cfg = GanConfig(
        loss=loss, width=width, batch_size=batch, steps=warmup + steps, eval_every=0, device="cpu"
    )
    drive(train_gan(cfg), on_event=on_event)
    return (stamps[warmup + steps] - stamps[warmup]) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=GanConfig.width)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"DCGAN 28x28 width {args.width}, batch {args.batch}, {args.steps} timed steps, "
        f"{args.repeats} interleaved repeats, {torch.get_num_threads()} torch thread(s)"
    )
    for loss in LOSSES:
        plain, job = [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(loss, args.steps, args.warmup, args.batch, args.width))
            job.append(job_loop(loss, args.steps, args.warmup, args.batch, args.width))
        p, j = statistics.median(plain), statistics.median(job)
        print(
            f"{loss:15s} plain {p * 1000:6.1f} ms/step, train_gan {j * 1000:6.1f} ms/step, "
            f"ratio {j / p:.3f} (target <= 1.05)",
            flush=True,
        )


if __name__ == "__main__":
    main()
