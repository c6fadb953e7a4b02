"""Square (L-inf), L2 PGD, L2 APGD, FAB-T (L2) and HopSkipJump through advstudio's API vs
plain-PyTorch loops of the same algorithms, on the built-in digits CNN.

Run: ``uv run python benchmarks/bench_attacks3.py [--images 32] [--repeats 3] [--device cpu]
[--only hop]``

The plain loops are what one would write from the papers in a notebook: no validation, no
oracle, the model called directly under ``no_grad``. Equal work on both sides: Square and APGD
at a small eps (L-inf 0.02, L2 0.3: no image is fooled, every one takes every query or step),
FAB and PGD for a fixed number of steps, HopSkipJump until its query budget is spent. Square L2
shares Square L-inf's loop and FAB-T L-inf FAB-T L2's; they are not timed separately. Contenders
interleaved (ABBA);
prints time per image and the ratio API / plain (below 1: the API is faster).
"""

from __future__ import annotations

import argparse
import math

import torch
from bench_minimal import abba_medians  # the sibling script (this one runs as a script)

from advstudio.core.attacks import apgd, as_predict
from advstudio.core.attacks.fab import fab_t
from advstudio.core.attacks.hopskipjump import as_label_predict, hop_skip_jump
from advstudio.core.attacks.l2 import pgd_l2
from advstudio.core.attacks.square import HALVINGS, square_linf
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.models.registry import load_builtin


def plain_square(model, x, y, eps, queries, p_init=0.05, gen=None):
    """Square L-inf as the authors' code: stripes, one window per iteration, margin loss."""

    def margin(xq, yq):
        with torch.no_grad():
            z = model(xq)
        return z.gather(1, yq[:, None])[:, 0] - z.scatter(1, yq[:, None], -math.inf).amax(1)

    n, c, h, w = x.shape
    signs = lambda shape: (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(x)  # noqa: E731
    x_best = (x + eps * signs((n, c, 1, w))).clamp(0, 1)
    m = margin(x_best, y)
    iters = queries - 2
    for i in range(iters):
        idx = (m > 0).nonzero()[:, 0]
        if idx.numel() == 0:
            break
        p = p_init / 2 ** sum(int(i / iters * 10_000) > k for k in HALVINGS)
        s = min(max(round(math.sqrt(p * h * w)), 1), h - 1)
        r = int(torch.randint(0, h - s + 1, (1,), generator=gen))
        q = int(torch.randint(0, w - s + 1, (1,), generator=gen))
        new = x_best[idx].clone()
        new[..., r : r + s, q : q + s] = (
            x[idx][..., r : r + s, q : q + s] + eps * signs((len(idx), c, 1, 1))
        ).clamp(0, 1)
        mn = margin(new, y[idx])
        better = mn < m[idx]
        x_best[idx[better]], m[idx[better]] = new[better], mn[better]
    return x_best


def plain_pgd_l2(model, x, y, eps, alpha, steps, gen=None):
    def unit(t):
        return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    x_adv = (x + eps * unit(torch.randn(x.shape, generator=gen))).clamp(0, 1)
    for _ in range(steps):
        xa = x_adv.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        d = x_adv + alpha * unit(g) - x
        d = d * (eps / d.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1).view(-1, 1, 1, 1)
        x_adv = (x + d).clamp(0, 1)
    return x_adv


def plain_apgd_l2(model, x, y, eps, steps, gen=None):
    """APGD L2 with cross-entropy (Croce & Hein 2020, Algorithm 1), one run, no restarts."""

    def unit(t):
        return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def ball(z):
        d = z - x
        scale = (eps / d.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1)
        return (x + d * scale.view(-1, 1, 1, 1)).clamp(0, 1)

    def loss_grad(xa):
        xa = xa.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), y, reduction="none")
        return loss.detach(), torch.autograd.grad(loss.sum(), xa)[0]

    x_cur = (x + eps * unit(torch.randn(x.shape, generator=gen))).clamp(0, 1)
    loss, g = loss_grad(x_cur)
    x_prev, x_best, loss_best, g_best = x_cur, x_cur.clone(), loss.clone(), g.clone()
    step = torch.full((len(x), 1, 1, 1), 2 * eps)
    interval, shrink, shortest = (
        max(int(0.22 * steps), 1),
        max(int(0.03 * steps), 1),
        max(int(0.06 * steps), 1),
    )
    rises, at_check, halved, since = (
        torch.zeros(len(x)),
        loss.clone(),
        torch.ones(len(x), dtype=torch.bool),
        0,
    )
    for i in range(steps):
        a = 1.0 if i == 0 else 0.75
        z = ball(x_cur + step * unit(g))
        x_prev, x_cur = x_cur, ball(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev))
        previous = loss
        loss, g = loss_grad(x_cur)
        rises += (loss > previous).float()
        up = loss > loss_best
        x_best[up], loss_best[up], g_best[up] = x_cur[up], loss[up], g[up]
        since += 1
        if since == interval:
            halve = (rises < 0.75 * interval) | (~halved & (loss_best <= at_check))
            step[halve] /= 2
            x_cur, x_prev, g, loss = x_cur.clone(), x_prev.clone(), g.clone(), loss.clone()
            x_cur[halve] = x_prev[halve] = x_best[halve]
            g[halve], loss[halve] = g_best[halve], loss_best[halve]
            halved, at_check, since = halve, loss_best.clone(), 0
            rises.zero_()
            interval = max(interval - shrink, shortest)
    return x_best


def _l2_projection(g, c, lo, hi, iters=40):
    """min ||d||_2 s.t. g.d = c in the box, by bisection on d = clamp(r g, lo, hi)."""
    sign = torch.sign(c)[:, None]
    low = torch.zeros_like(c)
    high = torch.full_like(c, 1e6)
    for _ in range(iters):
        mid = (low + high) / 2
        d = (mid[:, None] * sign * g).clamp(lo, hi)
        ok = (g * d).sum(1) * sign[:, 0] >= c.abs()
        high, low = torch.where(ok, mid, high), torch.where(ok, low, mid)
    return (high[:, None] * sign * g).clamp(lo, hi)


def plain_fab_l2(model, x, y, t, steps=100, alpha_max=0.1, eta=1.05, beta=0.9):
    """FAB-T L2 for one target per image, as the paper's Algorithm 1."""
    x0 = x.flatten(1)
    xk, best, best_n = x0.clone(), x0.clone(), torch.full((len(x),), math.inf)
    for _ in range(steps):
        xa = xk.view_as(x).clone().requires_grad_(True)
        z = model(xa)
        f = z.gather(1, t[:, None])[:, 0] - z.gather(1, y[:, None])[:, 0]
        (g,) = torch.autograd.grad(f.sum(), xa)
        g, f = g.flatten(1), f.detach()
        dk = _l2_projection(g, -f, -xk, 1 - xk)
        d0 = _l2_projection(g, -f - (g * (x0 - xk)).sum(1), -x0, 1 - x0)
        a = dk.norm(dim=1) / (dk.norm(dim=1) + d0.norm(dim=1)).clamp_min(1e-12)
        a = a.clamp(max=alpha_max)[:, None]
        xn = ((1 - a) * (xk + eta * dk) + a * (x0 + eta * d0)).clamp(0, 1)
        with torch.no_grad():
            hit = model(xn.view_as(x)).argmax(1) == t
        size = (xn - x0).norm(dim=1)
        better = hit & (size < best_n)
        best[better], best_n[better] = xn[better], size[better]
        xk = torch.where(hit[:, None], (1 - beta) * x0 + beta * xn, xn)
    return best.view_as(x)


def plain_hsj(model, x, y, queries, gen=None):
    """HopSkipJump L2, untargeted, one image at a time, stops when the budget is spent."""
    out = x.clone()
    for i in range(len(x)):
        x0, used = x[i : i + 1], 0

        def adv(z):
            nonlocal used
            used += len(z)
            with torch.no_grad():
                return model(z).argmax(1) != y[i]

        d = x0.numel()
        theta = 1.0 / d**1.5
        start = None
        while start is None and used < 101:
            noise = torch.rand(x0.shape, generator=gen)
            start = noise if bool(adv(noise)) else None
        if start is None:
            continue

        def search(xa):
            lo, hi = 0.0, 1.0
            while hi - lo > theta:
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if bool(adv(x0 + mid * (xa - x0))) else (mid, hi)
            return x0 + hi * (xa - x0)

        xa = search(start)
        dist, t = float((xa - x0).norm()), 1
        while queries - used - 17 >= 1:
            delta = 0.1 if t == 1 else math.sqrt(d) * theta * dist
            evals = min(int(100 * math.sqrt(t)), queries - used - 17)
            u = torch.randn((evals, *x0.shape[1:]), generator=gen)
            u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            probes = (xa + delta * u).clamp(0, 1)
            u = (probes - xa) / delta
            phi = adv(probes).float() * 2 - 1
            if abs(float(phi.mean())) != 1:
                phi = phi - phi.mean()
            grad = (phi.view(-1, 1, 1, 1) * u).mean(0, keepdim=True)
            grad = grad / grad.norm()
            step = dist / math.sqrt(t)
            while not bool(adv((xa + step * grad).clamp(0, 1))):
                step /= 2
            xa = search((xa + step * grad).clamp(0, 1))
            dist, t = float((xa - x0).norm()), t + 1
        out[i : i + 1] = xa
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="time only the attacks whose name has this")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.images} digits"
    )
    model = load_builtin("digits-cnn", device)
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = sweep_images(args.images, seed=0)
    x, y = x.to(device), y.to(device)
    with torch.no_grad():
        right = model(x).argmax(1) == y
        second = model(x).scatter(1, y[:, None], -math.inf).argmax(1)
    x, y, second = x[right], y[right], second[right]
    few = slice(0, 4)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    contenders = {
        "Square L-inf (eps 0.02, 300 queries)": (
            lambda: square_linf(as_predict(model), x, y, 0.02, max_queries=300, generator=gen()),
            lambda: plain_square(model, x, y, 0.02, 300, gen=gen()),
        ),
        "PGD L2 (eps 1.5, 20 steps)": (
            lambda: pgd_l2(model, x, y, 1.5, alpha=0.375, steps=20, generator=gen()),
            lambda: plain_pgd_l2(model, x, y, 1.5, 0.375, 20, gen=gen()),
        ),
        "APGD L2 (eps 0.3, 100 steps)": (
            lambda: apgd(model, x, y, eps=0.3, steps=100, norm="L2", seed=0),
            lambda: plain_apgd_l2(model, x, y, 0.3, 100, gen=gen()),
        ),
        "FAB-T L2 (100 steps, runner-up target)": (
            lambda: fab_t(model, x, y, norm="L2", target=second),
            lambda: plain_fab_l2(model, x, y, second),
        ),
        "HopSkipJump (1,000 queries, 4 digits)": (
            lambda: hop_skip_jump(
                as_label_predict(model), x[few], y[few], max_queries=1000, generator=gen()
            ),
            lambda: plain_hsj(model, x[few], y[few], 1000, gen=gen()),
        ),
    }
    for name, (api, plain) in contenders.items():
        if args.only.lower() not in name.lower():
            continue
        t = abba_medians({"api": api, "plain": plain}, args.repeats, device)
        n = 4 if "HopSkipJump" in name else len(x)
        print(
            f"{name}: advstudio {t['api'] / n * 1e3:.1f} ms/image, plain "
            f"{t['plain'] / n * 1e3:.1f} ms/image, ratio {t['api'] / t['plain']:.3f}"
        )


if __name__ == "__main__":
    main()
