"""Randomised smoothing's CERTIFY through advstudio's API vs a plain-PyTorch loop of the same
algorithm, on the built-in digits CNN.

Run: ``uv run python benchmarks/bench_certify.py [--images 4] [--n 10000] [--repeats 3]
[--batch-size 1000] [--device cpu]``

The reference is the loop of Cohen et al.'s own code (``locuslab/smoothing``, ``core.py``):
``x.repeat(b, 1, 1, 1) + randn_like * sigma`` per batch, predictions counted with numpy on the
CPU, the Clopper-Pearson bound from scipy's beta quantile. Same model, images, settings and
base batch size; the contenders are interleaved (ABBA) so load from other processes hits both
alike. Prints certified images per second, the ratio API / reference time (below 1: the API is
faster) and both sets of certificates' mean radius (they use different noise, so close, not
equal).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import beta, norm

from advstudio.core.certify.smoothing import Smoothing, certify
from advstudio.core.data import load_digits
from advstudio.core.models.registry import load_builtin


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def abba_medians(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def plain_counts(model, x, num, sigma, batch_size, classes):
    counts = np.zeros(classes, dtype=int)
    with torch.no_grad():
        remaining = num
        while remaining > 0:
            b = min(batch_size, remaining)
            remaining -= b
            batch = x.repeat((b, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            for idx in predictions.cpu().numpy():
                counts[idx] += 1
    return counts


def plain_certify(model, x, n0, n, alpha, sigma, batch_size, classes):
    """(class or -1, radius) as Cohen et al.'s ``Smooth.certify``."""
    top = plain_counts(model, x, n0, sigma, batch_size, classes).argmax()
    counts = plain_counts(model, x, n, sigma, batch_size, classes)
    k = counts[top]
    p_lower = beta.ppf(alpha, k, n - k + 1) if k > 0 else 0.0
    return (-1, 0.0) if p_lower < 0.5 else (int(top), sigma * norm.ppf(p_lower))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.images} digits, n0 {args.n0}, n {args.n}, sigma {args.sigma:g}, "
        f"batch {args.batch_size}"
    )
    model = load_builtin("digits-cnn", device)
    x = load_digits("test")[0][: args.images].to(device)
    smoothing = Smoothing(args.sigma, args.n0, args.n, 0.001, args.batch_size)
    radii: dict[str, list[float]] = {"api": [], "plain": []}

    def api() -> None:
        generator = torch.Generator(device=device).manual_seed(0)
        radii["api"] = [certify(model, image, smoothing, generator).radius for image in x]

    def plain() -> None:
        torch.manual_seed(0)
        radii["plain"] = [
            plain_certify(
                model, image, args.n0, args.n, 0.001, args.sigma, args.batch_size, model.num_classes
            )[1]
            for image in x
        ]

    t = abba_medians({"api": api, "plain": plain}, args.repeats, device)
    print(
        f"CERTIFY: advstudio {len(x) / t['api']:.2f} images/s, plain "
        f"{len(x) / t['plain']:.2f} images/s, ratio {t['api'] / t['plain']:.3f}; mean radius "
        f"advstudio {statistics.mean(radii['api']):.3f}, plain "
        f"{statistics.mean(radii['plain']):.3f}"
    )


if __name__ == "__main__":
    main()
