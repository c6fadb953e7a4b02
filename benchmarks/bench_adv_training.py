"""One epoch of FGSM adversarial training through advstudio's job vs a plain PyTorch loop.

Run: ``uv run python benchmarks/bench_adv_training.py [--repeats 4] [--threads 1]``

The job (``train_classifier`` with the ``"fgsm"`` recipe: Goodfellow et al.'s 0.5 / 0.5 mix at
eps 0.1, 4,000 bundled digits, batch 64, Adam 1e-3, no evaluation) is driven by ``jobs.drive``,
so its per-step events, checks and bookkeeping are included. The plain loop does the same work
by hand: same initial weights, data order and dropout masks, FGSM in eval mode, one train-mode
pass over clean + adversarial images, one Adam step. Both runs end with the same weights (checked
and printed), so the ratio measures overhead only. Timings are medians over ``--repeats`` runs,
the two contenders interleaved in ABBA order so load from other processes hits both alike.
Target: ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from advstudio.core.data import load_digits
from advstudio.core.defence import TrainConfig, build_classifier, train_classifier
from advstudio.core.jobs import drive

EPS, ALPHA_MIX, BATCH, LR, SEED = 0.1, 0.5, 64, 1e-3, 0


def job_epoch(device: str) -> dict[str, torch.Tensor]:
    config = TrainConfig(
        recipe="fgsm",
        eps=EPS,
        alpha_mix=ALPHA_MIX,
        epochs=1,
        batch_size=BATCH,
        lr=LR,
        seed=SEED,
        device=device,
        eval_images=0,
    )
    return drive(train_classifier(config)).result.state_dict


def plain_epoch(device: str) -> dict[str, torch.Tensor]:
    x_all, y_all = load_digits("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build_classifier("digits-cnn").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(SEED))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1)  # the job's dropout stream starts from this seed too
        for start in range(0, len(x_all), BATCH):
            idx = order[start : start + BATCH]
            x, y = x_all[idx].to(device), y_all[idx].to(device)
            model.eval()
            xr = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
            x_adv = (x + EPS * grad.sign()).clamp(0, 1)
            model.train()
            optimizer.zero_grad(set_to_none=True)
            logits = model(torch.cat([x, x_adv]))
            n = len(x)
            loss = ALPHA_MIX * F.cross_entropy(logits[:n], y) + (1 - ALPHA_MIX) * F.cross_entropy(
                logits[n:], y
            )
            loss.backward()
            optimizer.step()
    return {k: v.detach().cpu() for k, v in model.net.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")

    a, b = job_epoch(args.device), plain_epoch(args.device)  # warm-up, and the same-work check
    same = all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    times: dict[str, list[float]] = {"job": [], "plain": []}
    contenders = [("job", job_epoch), ("plain", plain_epoch)]
    for i in range(args.repeats):
        for name, fn in contenders[:: 1 if i % 2 == 0 else -1]:  # ABBA: no order advantage
            start = time.perf_counter()
            fn(args.device)
            times[name].append(time.perf_counter() - start)
    job, plain = statistics.median(times["job"]), statistics.median(times["plain"])
    print(
        f"FGSM adversarial training, 1 epoch of 4,000 digits, batch {BATCH}: advstudio job "
        f"{job:.2f} s, plain loop {plain:.2f} s, ratio {job / plain:.3f} (target <= 1.10); "
        f"same final weights: {same}"
    )
    print(
        "  all runs (s): job "
        + ", ".join(f"{t:.2f}" for t in times["job"])
        + "; plain "
        + ", ".join(f"{t:.2f}" for t in times["plain"])
    )


if __name__ == "__main__":
    main()
