"""Attack lab III figures for the README (run from the repository root, CPU, one thread):

    nice -n 10 uv run --frozen python benchmarks/bench_attacks3b.py robust [N [MODEL ...]]
    nice -n 10 uv run --frozen python benchmarks/bench_attacks3b.py others   # UAP, patch, EoT

``robust``: on the built-in CNNs (or only the ``MODEL``s named, e.g. one per process), robust
accuracy at eps .1 / .2 / .3 on ``N`` (100 unless given) bundled test digits under AutoAttack
standard and the fast ensemble, with the time of each. ``others``: the universal perturbation's
held-out fooling rate at eps .1 / .2 (fitted on 200 digits, judged on
200 others), the patch's targeted success at 10 % / 20 % of the image (target 3, 300 steps),
and EoT-PGD vs plain PGD on a Gaussian-noise defence (sigma 0.25) at eps .2, success judged
over 20 draws of the defence. One line per figure, flushed as it comes.
"""

from __future__ import annotations

import sys
import time

import torch

from advstudio.core.attacks.eot import eot_pgd, seeded
from advstudio.core.attacks.patch import train_patch
from advstudio.core.attacks.robust import ENSEMBLES, robust_accuracy
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.attacks.transforms import GaussianNoise, defended
from advstudio.core.attacks.universal import universal_perturbation
from advstudio.core.attacks.whitebox import pgd
from advstudio.core.models.registry import load_builtin

N = 100


def robust(n: int = N, models: tuple[str, ...] = ("digits-cnn", "digits-cnn-pgd")) -> None:
    x, y = sweep_images(n, seed=0)
    for name in models:
        model = load_builtin(name)
        for eps in (0.1, 0.2, 0.3):
            for ensemble in ("fast", "standard"):
                start = time.perf_counter()
                res = robust_accuracy(model, x, y, eps, ENSEMBLES[ensemble])
                print(
                    f"{name} eps {eps:g} {ensemble}: clean {res.clean_accuracy:.2f} robust "
                    f"{res.robust_accuracy:.2f} broken {res.broken} "
                    f"{time.perf_counter() - start:.0f} s "
                    f"warnings {[w.check for w in res.warnings]}",
                    flush=True,
                )


def others() -> None:
    cnn = load_builtin("digits-cnn")
    x, y = sweep_images(400, seed=0)
    for eps in (0.1, 0.2):
        start = time.perf_counter()
        res = universal_perturbation(cnn, x[:200], x[200:], eps, passes=2)
        print(
            f"universal eps {eps:g}: fit {res.fit_rate:.3f} held-out {res.held_out_rate:.3f} "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    for area in (0.1, 0.2):
        start = time.perf_counter()
        res = train_patch(cnn, x[:200], x[200:], 3, area=area, steps=300)
        print(
            f"patch {area:.0%}: success {res.success:.3f} {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    shielded = defended(cnn, GaussianNoise(0.25))
    xs, ys = x[:50], y[:50]
    for label, samples in (("plain PGD", 0), ("EoT-PGD (10 draws)", 10)):
        start = time.perf_counter()
        if samples:
            x_adv = eot_pgd(shielded, xs, ys, 0.2, alpha=0.025, steps=20, samples=samples)
        else:
            with seeded(0, xs.device):
                x_adv = pgd(shielded, xs, ys, 0.2, alpha=0.025, steps=20)
        with seeded(1, xs.device), torch.no_grad():
            fooled = torch.stack([shielded(x_adv).argmax(1) != ys for _ in range(20)])
        print(
            f"noise defence eps .2, {label}: success {fooled.float().mean():.3f} "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "robust":
        robust(
            int(sys.argv[2]) if len(sys.argv) > 2 else N,
            tuple(sys.argv[3:]) or ("digits-cnn", "digits-cnn-pgd"),
        )
    else:
        others()
