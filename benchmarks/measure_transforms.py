"""Input-transform defences on the built-in digits CNN: masking vs BPDA, feature squeezing, saving.

Run: ``uv run python benchmarks/measure_transforms.py [--n 200] [--eps 0.2] [--device cpu]``

On ``--n`` bundled test digits (drawn as the sweep draws them, seed 0):

1. Each defence (JPEG q=75, 1- and 2-bit depth, 2x2 and 3x3 median): clean accuracy of the
   defended model, accuracy under PGD (``--eps``, 20 steps, alpha eps/10, random start) through
   the plain defended model, and under the same PGD with BPDA (identity backward).
2. Feature squeezing (1 bit + 2x2 median): threshold fitted at a 5 % false-alarm rate on
   ``--n`` *other* clean test digits; false-alarm rate on the measured clean digits and
   detection rate on PGD examples made against the undefended CNN (all, and those that fool).
3. FGSM eps=0.1 and PGD (``--eps``) on the CNN: share adversarial as float, and of those the
   share still adversarial after an 8-bit PNG and a JPEG q=75 round trip.

Accuracy figures, not timings; seeded and deterministic on the CPU.
"""

from __future__ import annotations

import argparse

import torch

from advstudio.core.attacks.quantise import quantise_adversarial, survival
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.attacks.transforms import (
    BitDepth,
    FeatureSqueezingDetector,
    JpegCompression,
    MedianSmoothing,
    defended,
)
from advstudio.core.attacks.whitebox import fgsm, pgd
from advstudio.core.errors import AttackError
from advstudio.core.models.registry import load_builtin

DEFENCES = {
    "none": None,
    "JPEG q=75": JpegCompression(75),
    "bit depth 1": BitDepth(1),
    "bit depth 2": BitDepth(2),
    "median 2x2": MedianSmoothing(2),
    "median 3x3": MedianSmoothing(3),
}


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cnn = load_builtin("digits-cnn", device)
    x_all, y_all = sweep_images(2 * args.n, seed=0)
    x, y = x_all[: args.n].to(device), y_all[: args.n].to(device)
    x_fit = x_all[args.n :].to(device)
    eps, alpha = args.eps, args.eps / 10

    def run_pgd(model: torch.nn.Module) -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return pgd(model, x, y, eps, alpha=alpha, steps=args.steps, generator=gen)

    print(
        f"digits-cnn, {args.n} test digits, PGD eps={eps:g} alpha={alpha:g} "
        f"steps={args.steps} (random start), device {device}"
    )
    print(f"{'defence':<14}{'clean':>8}{'PGD plain':>12}{'PGD BPDA':>11}")
    for name, transform in DEFENCES.items():
        if transform is None:
            clean, adv = accuracy(cnn, x, y), accuracy(cnn, run_pgd(cnn), y)
            print(f"{name:<14}{clean:>8.1%}{adv:>12.1%}{'-':>11}")
            continue
        plain, bpda = defended(cnn, transform), defended(cnn, transform, bpda=True)
        clean = accuracy(plain, x, y)
        try:
            plain_text = f"{accuracy(plain, run_pgd(plain), y):.1%}"
        except AttackError:
            plain_text = "no grad"
        print(f"{name:<14}{clean:>8.1%}{plain_text:>12}{accuracy(plain, run_pgd(bpda), y):>11.1%}")
    print("(no grad: the pipeline has no input gradient, so PGD raises AttackError)")

    detector = FeatureSqueezingDetector(cnn)
    threshold = detector.fit_threshold(x_fit, false_alarm_rate=0.05)
    x_pgd = run_pgd(cnn)
    fooled = cnn(x_pgd).argmax(1) != y
    flagged = detector.detect(x_pgd)
    print(
        f"\nfeature squeezing (1 bit + 2x2 median), threshold {threshold:.3f} at 5 % on "
        f"{len(x_fit)} other clean digits"
    )
    rows = {
        "false alarms on clean": detector.detect(x),
        f"detected, PGD eps={eps:g}": flagged,
        f"detected, PGD that fools ({int(fooled.sum())})": flagged[fooled],
        f"detected, FGSM eps={eps:g}": detector.detect(fgsm(cnn, x, y, eps)),
    }
    for label, hits in rows.items():
        print(f"  {label:<34}{hits.float().mean():>7.1%}")

    print("\nsurvival of saving (share of float adversarials still adversarial)")
    for name, e, x_adv in (("FGSM", 0.1, fgsm(cnn, x, y, 0.1)), ("PGD", eps, x_pgd)):
        rates = survival(cnn, x_adv, y, jpeg_quality=75).rates()
        n_adv = round(rates["adversarial"] * args.n)
        print(
            f"  {name} eps={e:g}: adversarial {rates['adversarial']:.1%} ({n_adv}); "
            f"survive PNG {rates['survive_png']:.1%}, JPEG q=75 {rates['survive_jpeg']:.1%}"
        )
        repaired = quantise_adversarial(cnn, x, x_adv, y, e)
        print(
            f"    quantisation-aware: {int(repaired.fooled.sum())} on the grid and adversarial, "
            f"{int(repaired.repaired.sum())} repaired, "
            f"{repaired.method.count('failed')} lost, max L-inf "
            f"{float(repaired.linf.max()) * 255:.2f}/255"
        )


if __name__ == "__main__":
    main()
