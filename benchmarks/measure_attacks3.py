"""Square vs NES / SPSA at the same query budget, and HopSkipJump's L2 vs C&W's, on the
built-in digits CNN (CPU, a few minutes).

Run: ``uv run python benchmarks/measure_attacks3.py [--images 100] [--hsj-images 20]
[--hsj-queries 1000 5000] [--only square|hop]``

Only the digits the CNN classifies right are attacked. Square, NES and SPSA: L-inf eps 0.2,
1,000 queries per image; success rate and the median queries of the successful ones (the clean
query included). HopSkipJump: label-only, 1,000 queries (or each budget of ``--hsj-queries``, a
fresh run each), untargeted; its median L2 against C&W L2's (white-box, 100 steps x 5 rounds of
its search on c) on the same digits.
"""

from __future__ import annotations

import argparse
import time

import torch

from advstudio.core.attacks import as_predict, cw_l2, l2, nes, spsa
from advstudio.core.attacks.hopskipjump import as_label_predict, hop_skip_jump
from advstudio.core.attacks.square import square_linf
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.models.registry import load_builtin


def _right(model, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = sweep_images(n, seed=seed)
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return x[ok], y[ok]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--hsj-images", type=int, default=20)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.2)
    parser.add_argument("--hsj-queries", type=int, nargs="+", default=None)
    parser.add_argument("--only", choices=("square", "hop"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_builtin("digits-cnn")
    x, y = _right(model, args.images, seed=0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(x)} of "
        f"{args.images} digits classified right; L-inf eps {args.eps}, {args.queries} queries"
    )
    if args.only != "hop":
        _score_attacks(model, x, y, args)
    if args.only != "square":
        _hop(model, args)


def _score_attacks(model, x, y, args) -> None:
    box = as_predict(model)
    runs = {
        "Square p_init 0.05": lambda g: square_linf(
            box, x, y, args.eps, max_queries=args.queries, generator=g
        ),
        "Square p_init 0.3": lambda g: square_linf(
            box, x, y, args.eps, max_queries=args.queries, p_init=0.3, generator=g
        ),
        "NES": lambda g: nes(box, x, y, args.eps, max_queries=args.queries, generator=g),
        "SPSA": lambda g: spsa(box, x, y, args.eps, max_queries=args.queries, generator=g),
    }
    for name, run in runs.items():
        start = time.perf_counter()
        res = run(torch.Generator().manual_seed(0))
        ok = res.success
        med = int(res.queries[ok].median()) if bool(ok.any()) else float("nan")
        print(
            f"{name}: success {float(ok.float().mean()):.2f}, median queries {med}, mean "
            f"queries {float(res.queries.float().mean()):.0f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


def _hop(model, args) -> None:
    xh, yh = _right(model, args.hsj_images, seed=1)
    start = time.perf_counter()
    cw = cw_l2(model, xh, yh)
    with torch.no_grad():
        cw_ok = model(cw).argmax(1) != yh
    cw_l2s = l2(xh, cw)[cw_ok]
    print(
        f"C&W L2 ({len(xh)} digits): success {float(cw_ok.float().mean()):.2f}, median L2 "
        f"{float(cw_l2s.median()):.3f} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    for queries in args.hsj_queries or [args.queries]:
        start = time.perf_counter()
        res = hop_skip_jump(
            as_label_predict(model),
            xh,
            yh,
            max_queries=queries,
            generator=torch.Generator().manual_seed(0),
        )
        hsj = l2(xh, res.x_adv)[res.success]
        both = res.success & cw_ok
        print(
            f"HopSkipJump ({queries} queries, {len(xh)} digits): success "
            f"{float(res.success.float().mean()):.2f}, median L2 {float(hsj.median()):.3f}, "
            f"median queries {int(res.queries.median())} ({time.perf_counter() - start:.0f} s); "
            f"ratio HSJ / C&W medians {float(hsj.median()) / float(cw_l2s.median()):.2f}; "
            f"per digit (both succeeded, {int(both.sum())}): median HSJ / C&W "
            f"{float((l2(xh, res.x_adv)[both] / l2(xh, cw)[both]).median()):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
