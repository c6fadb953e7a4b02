"""DeepFool and Carlini-Wagner L2 through advstudio's API vs plain-PyTorch references of the same
algorithms, on the built-in digits CNN.

Run: ``uv run python benchmarks/bench_minimal.py [--images 64] [--repeats 3] [--device cpu]``

The references below are what one would write in a notebook: every image stays in the batch
until the end (a mask stops updating the finished ones), ``torch.optim.Adam`` for C&W, no
validation. Same model, same images, same settings in the same run; the contenders are
interleaved (ABBA) so load from other processes hits both alike. Prints time per image, the
ratio API / reference (below 1: the API is faster) and whether both found the same
perturbations (success rate and median L2).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from advstudio.core.attacks import cw_l2, deepfool, l2
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.models.registry import load_builtin


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def abba_medians(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    for fn in fns.values():  # warm-up (and torch.optim's first import)
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


def plain_deepfool(model, x, steps=50, overshoot=0.02):
    """DeepFool as the authors' code, batched: all classes, overshoot on the total step."""
    with torch.no_grad():
        k0 = model(x).argmax(1)
    classes = model(x[:1]).shape[1]
    r_tot = torch.zeros_like(x)
    x_adv = x.clone()
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(steps):
        xa = x_adv.clone().requires_grad_(True)
        logits = model(xa)
        active &= logits.argmax(1) == k0
        if not active.any():
            break
        grads = torch.stack(
            [
                torch.autograd.grad(logits[:, c].sum(), xa, retain_graph=True)[0]
                for c in range(classes)
            ],
            1,
        )
        own = grads[torch.arange(len(x)), k0]
        w = (grads - own[:, None]).flatten(2)
        f = (logits - logits.gather(1, k0[:, None])).detach()
        norms = w.norm(dim=2)
        dist = f.abs() / norms
        dist[torch.arange(len(x)), k0] = math.inf
        best = dist.argmin(1)
        rows = torch.arange(len(x))
        step = ((dist[rows, best] + 1e-4) / norms[rows, best])[:, None] * w[rows, best]
        step = step.view_as(x) * active.view(-1, 1, 1, 1)
        r_tot = (x + r_tot + step).clamp(0, 1) - x
        x_adv = (x + 1.02 * r_tot).clamp(0, 1)
    return x_adv.detach()


def plain_cw(model, x, y, c=1.0, kappa=0.0, steps=100, lr=0.1, search_steps=5):
    """C&W L2, untargeted, tanh space, torch.optim.Adam, per-image binary search on c."""
    n = len(x)
    w0 = torch.atanh((2 * x - 1) * (1 - 1e-6))
    const = torch.full((n,), c, device=x.device)
    lo, hi = torch.zeros(n, device=x.device), torch.full((n,), math.inf, device=x.device)
    best, best_l2 = x.clone(), torch.full((n,), math.inf, device=x.device)
    for _ in range(search_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            xa = (torch.tanh(w) + 1) / 2
            z = model(xa)
            own = z.gather(1, y[:, None])[:, 0]
            other = z.scatter(1, y[:, None], -math.inf).amax(1)
            dist = (xa - x).flatten(1).pow(2).sum(1)
            loss = (dist + const * (own - other).clamp_min(-kappa)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                ok = (other - own > 0) & (other - own >= kappa)
                found |= ok
                better = ok & (dist.sqrt() < best_l2)
                best_l2[better] = dist.sqrt()[better]
                best[better] = xa[better]
        hi = torch.where(found, torch.minimum(hi, const), hi)
        lo = torch.where(found, lo, torch.maximum(lo, const))
        const = torch.where(torch.isfinite(hi), (lo + hi) / 2, const * 10)
    return best.detach()


def _summary(model, x, y, x_adv) -> tuple[float, float]:
    with torch.no_grad():
        ok = model(x_adv).argmax(1) != y
    return float(ok.float().mean()), float(l2(x, x_adv)[ok.cpu()].median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cw-steps", type=int, default=100)
    parser.add_argument("--search-steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.images} digits"
    )
    model = load_builtin("digits-cnn", device)
    for p in model.parameters():
        p.requires_grad_(False)  # the references' backward() must not fill .grad
    x, y = sweep_images(args.images, seed=0)
    x, y = x.to(device), y.to(device)
    with torch.no_grad():
        right = model(x).argmax(1) == y
    x, y = x[right], y[right]  # both methods attack the correctly classified ones

    contenders = {
        "DeepFool": (lambda: deepfool(model, x, y=y), lambda: plain_deepfool(model, x)),
        f"C&W ({args.cw_steps} x {args.search_steps})": (
            lambda: cw_l2(model, x, y, steps=args.cw_steps, search_steps=args.search_steps),
            lambda: plain_cw(model, x, y, steps=args.cw_steps, search_steps=args.search_steps),
        ),
    }
    for name, (api, plain) in contenders.items():
        same = _summary(model, x, y, api()), _summary(model, x, y, plain())
        t = abba_medians({"api": api, "plain": plain}, args.repeats, device)
        print(
            f"{name}: advstudio {t['api'] / len(x) * 1e3:.1f} ms/image, plain "
            f"{t['plain'] / len(x) * 1e3:.1f} ms/image, ratio {t['api'] / t['plain']:.3f}; "
            f"success / median L2: advstudio {same[0][0]:.2f} / {same[0][1]:.3f}, plain "
            f"{same[1][0]:.2f} / {same[1][1]:.3f}"
        )


if __name__ == "__main__":
    main()
