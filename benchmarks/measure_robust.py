"""Robust accuracy of the built-in digit CNNs: the standard one and the PGD-trained one, under the
baseline ensemble (APGD-CE -> APGD-T -> SPSA) and under FGSM alone, on 200 test digits.

    uv run python benchmarks/measure_robust.py [n_images]
"""

from __future__ import annotations

import sys
import time

import torch

from advstudio.core.attacks.robust import RobustConfig, run_robust
from advstudio.core.jobs import drive


def main() -> None:
    torch.set_num_threads(2)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f"{'model':16s} {'eps':>5s} {'clean':>7s} {'FGSM':>7s} {'baseline':>9s}  broken first by")
    for model in ("digits-cnn", "digits-cnn-pgd"):
        for eps in (0.1, 0.2):
            t0 = time.perf_counter()
            res = drive(
                run_robust(RobustConfig(model=model, eps=eps, n_images=n, device="cpu"))
            ).result
            print(
                f"{model:16s} {eps:5.2f} {res.clean_accuracy:7.3f} {res.fgsm_accuracy:7.3f} "
                f"{res.robust_accuracy:9.3f}  {res.broken}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
