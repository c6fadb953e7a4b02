"""The CUDA path, checked on a machine with a GPU (no Qt needed): every core job runs on the GPU
and gives the figures it gives on the CPU.

    python benchmarks/cuda_check.py            # exits 1 if any check fails
    python benchmarks/cuda_check.py "lab II"   # only the checks whose name contains this

Prints one line per check with its figures and timing.
"""

from __future__ import annotations

import sys
import time
import traceback

import torch

FAILED: list[str] = []


ONLY = sys.argv[1] if len(sys.argv) > 1 else ""


def check(name):
    def wrap(fn):
        if ONLY and ONLY not in name:
            return fn
        t0 = time.perf_counter()
        try:
            detail = fn()
            print(f"ok    {name}: {detail} ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception:  # noqa: BLE001
            FAILED.append(name)
            print(
                f"FAIL  {name} ({time.perf_counter() - t0:.1f} s)\n{traceback.format_exc()}",
                flush=True,
            )
        return fn

    return wrap


def main() -> int:
    from advstudio.core.devices import describe, pick_device
    from advstudio.core.jobs import drive

    device = pick_device("auto")
    print(f"device: {describe(device)}; torch {torch.__version__}", flush=True)
    if device.type != "cuda":
        print("no CUDA device: nothing to check")
        return 1

    @check("evaluate job on CUDA = on CPU")
    def _():
        from advstudio.core.evaluate import EvaluateConfig, evaluate

        gpu = drive(evaluate(EvaluateConfig(device="cuda"))).result.accuracy
        cpu = drive(evaluate(EvaluateConfig(device="cpu"))).result.accuracy
        assert abs(gpu - cpu) <= 0.002, (gpu, cpu)
        return f"accuracy {gpu:.4f} (CPU {cpu:.4f})"

    @check("attack lab on CUDA: white-box, transfer, query")
    def _():
        from advstudio.core.attacks.lab import AttackSpec, attack_image, fgsm_at
        from advstudio.core.data import load_digits
        from advstudio.core.models.registry import load_builtin

        model = load_builtin("digits-cnn", "cuda")
        surrogate = load_builtin("digits-mlp", "cuda")
        x = load_digits("test")[0][:1]
        out = []
        for spec in (
            AttackSpec(eps=0.3),
            AttackSpec(attack="pgd", eps=0.3, targeted=True, target=3),
            AttackSpec(access="transfer", eps=0.3),
            AttackSpec(access="query", attack="nes", eps=0.3, max_queries=500),
        ):
            o = drive(attack_image(model, x, spec, surrogate)).result
            assert (o.x_adv - o.x).abs().max() <= spec.eps + 1e-6 and o.x_adv.device.type == "cpu"
            out.append(
                f"{spec.attack}/{spec.access.value} {'fooled' if o.report.success else 'held'}"
            )
        first = drive(attack_image(model, x, AttackSpec(eps=0.05))).result
        assert fgsm_at(model, first, 0.2).spec.eps == 0.2
        return ", ".join(out)

    @check("attack lab II on CUDA: DeepFool, C&W, APGD, robust accuracy, BPDA, saving")
    def _():
        from advstudio.core.attacks import (
            BitDepth,
            apgd,
            cw_l2,
            deepfool,
            defended,
            pgd,
            robust_accuracy,
            survival,
        )
        from advstudio.core.attacks.sweep import sweep_images
        from advstudio.core.models.registry import load_builtin

        model = load_builtin("digits-cnn", "cuda")
        x, y = (t.to("cuda") for t in sweep_images(64, seed=0))

        def acc(m, xa):
            with torch.no_grad():
                return float((m(xa).argmax(1) == y).float().mean())

        df = deepfool(model, x, y=y)
        cw = cw_l2(model, x, y, steps=50, search_steps=3)
        assert df.device.type == "cuda" and cw.device.type == "cuda"
        l2_df = float((df - x).flatten(1).norm(dim=1).median())
        l2_cw = float((cw - x).flatten(1).norm(dim=1).median())
        xa = apgd(model, x, y, eps=0.1, steps=50, seed=0)
        assert (xa - x).abs().max() <= 0.1 + 1e-6
        res = robust_accuracy(model, x.cpu(), y.cpu(), 0.1, steps=20, max_queries=200)
        shield = defended(model, BitDepth(2))
        bpda = defended(model, BitDepth(2), bpda=True)
        gen = torch.Generator(device="cuda").manual_seed(0)
        after_bpda = acc(bpda, pgd(bpda, x, y, 0.3, alpha=0.03, steps=20, generator=gen))
        saved = survival(model, pgd(model, x, y, 0.2, alpha=0.02, steps=20), y, jpeg_quality=75)
        return (
            f"median L2 DeepFool {l2_df:.2f}, C&W {l2_cw:.2f}; APGD-50 acc {acc(model, xa):.3f}; "
            f"robust {res.robust_accuracy:.3f} (FGSM {res.fgsm_accuracy:.3f}); bit depth 2 "
            f"clean {acc(shield, x):.3f}, BPDA {after_bpda:.3f}; survival report "
            f"{type(saved).__name__}"
        )

    @check("epsilon sweep on CUDA ~ CPU")
    def _():
        from advstudio.core.attacks.sweep import SweepConfig, run_sweep

        cfg = dict(attacks=("fgsm", "pgd"), epsilons=(0.0, 0.1, 0.2), n_images=500)
        gpu = drive(run_sweep(SweepConfig(device="cuda", **cfg))).result
        cpu = drive(run_sweep(SweepConfig(device="cpu", **cfg))).result
        for name in cfg["attacks"]:
            for a, b in zip(gpu.curves[name].accuracy, cpu.curves[name].accuracy):
                assert abs(a - b) <= 0.02, (name, a, b)
        return (
            "FGSM "
            + "/".join(f"{a:.3f}" for a in gpu.curves["fgsm"].accuracy)
            + ", PGD "
            + "/".join(f"{a:.3f}" for a in gpu.curves["pgd"].accuracy)
        )

    @check("DCGAN training on CUDA")
    def _():
        from advstudio.core.gan import GanConfig
        from advstudio.core.gan.train import train_gan

        t0 = time.perf_counter()
        res = drive(
            train_gan(GanConfig(steps=600, eval_every=600, device="cuda", preview_rate=0))
        ).result
        sps = 600 / (time.perf_counter() - t0)
        ev = res.evaluation
        return (
            f"{sps:.0f} steps/s incl. 2 evaluations; after 600 steps "
            f"{ev['classes_covered']:.0f}/10 classes, Fréchet {ev['frechet']:.0f}"
        )

    @check("adversarial training (FGSM, 2 epochs) on CUDA")
    def _():
        from advstudio.core.defence.config import TrainConfig
        from advstudio.core.defence.train import train_classifier

        res = drive(
            train_classifier(TrainConfig(recipe="fgsm", eps=0.25, epochs=2, device="cuda"))
        ).result
        m = res.metrics
        return f"clean {m['clean_acc']:.3f}, FGSM {m['fgsm_acc']:.3f}, PGD {m['pgd_acc']:.3f}"

    @check("VAT (300 steps) and detector (dry) on CUDA")
    def _():
        from advstudio.core.defence.config import DetectorConfig, VatConfig
        from advstudio.core.defence.detector import train_detector
        from advstudio.core.defence.vat import train_vat

        vat = drive(train_vat(VatConfig(steps=300, eval_every=300, device="cuda"))).result
        drive(train_detector(DetectorConfig(device="cuda", dry_run=True)))
        return f"VAT test accuracy after 300 steps {vat.test_acc:.3f}"

    @check("poisoning job (dry run) on CUDA")
    def _():
        from advstudio.core.poisoning import job

        cfg = job.PoisonConfig(device="cuda", dry_run=True)
        drive(job.run_poisoning(cfg))
        return "ran"

    print(f"{len(FAILED)} failed: {FAILED}" if FAILED else "all CUDA checks passed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
