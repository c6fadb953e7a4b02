"""FGSM through advstudio's API vs plain PyTorch, on the built-in digits CNN.

Run: ``uv run python benchmarks/bench_fgsm.py [--repeats 7] [--device cpu]``

1. One FGSM batch of 256 digits (``advstudio.core.attacks.fgsm``) against one plain forward +
   backward of the same model (the cost of a training step without the optimiser), and against
   a plain-PyTorch FGSM. Target: ratio <= 1.10.
2. A 1,000-image, 8-epsilon FGSM sweep (``run_sweep``: model and data loading, events, snapshots
   included) against a plain loop doing the same work (one gradient per batch, one forward per
   epsilon).

Timings are medians over ``--repeats`` runs after a warm-up, with the contenders interleaved so
that load from other processes hits both alike. Ratios only: no absolute targets.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from advstudio.core.attacks import SweepConfig, fgsm, run_sweep
from advstudio.core.data import load_digits
from advstudio.core.jobs import drive
from advstudio.core.models.registry import load_builtin

EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    model = load_builtin("digits-cnn", device)
    x_all, y_all = load_digits("test")
    x, y = x_all[:256].to(device), y_all[:256].to(device)

    def plain_forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def plain_fgsm() -> torch.Tensor:
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
        return (x + 0.1 * g.sign()).clamp(0, 1)

    def api_fgsm() -> torch.Tensor:
        return fgsm(model, x, y, 0.1)

    t = interleaved_medians(
        {"api": api_fgsm, "fwd+bwd": plain_forward_backward, "plain fgsm": plain_fgsm},
        args.repeats,
        device,
    )
    model.zero_grad(set_to_none=True)
    print(
        f"FGSM, batch 256: advstudio {t['api'] * 1e3:.1f} ms, plain forward+backward "
        f"{t['fwd+bwd'] * 1e3:.1f} ms, plain FGSM {t['plain fgsm'] * 1e3:.1f} ms"
    )
    print(
        f"  ratio vs forward+backward: {t['api'] / t['fwd+bwd']:.3f} (target <= 1.10); "
        f"vs plain FGSM: {t['api'] / t['plain fgsm']:.3f}"
    )

    config = SweepConfig(epsilons=EPSILONS, n_images=1000, batch_size=250, device=str(device))

    def api_sweep() -> list[float]:
        return drive(run_sweep(config)).result.curves["fgsm"].accuracy

    def plain_sweep() -> list[float]:
        net = load_builtin("digits-cnn", device)
        xs, ys = load_digits("test")
        correct = [0] * len(EPSILONS)
        for xb, yb in zip(xs.to(device).split(250), ys.to(device).split(250)):
            xr = xb.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(net(xr), yb), xr)
            sign = g.sign()
            with torch.no_grad():
                for i, eps in enumerate(EPSILONS):
                    pred = net((xb + eps * sign).clamp(0, 1)).argmax(1)
                    correct[i] += int((pred == yb).sum())
        return [c / len(xs) for c in correct]

    same = api_sweep() == plain_sweep()
    t = interleaved_medians({"api": api_sweep, "plain": plain_sweep}, args.sweep_repeats, device)
    print(
        f"FGSM sweep, 1,000 images x {len(EPSILONS)} eps: advstudio {t['api']:.2f} s, plain "
        f"loop {t['plain']:.2f} s, ratio {t['api'] / t['plain']:.3f}; same accuracies: {same}"
    )


if __name__ == "__main__":
    main()
