"""Colour models through advstudio vs plain PyTorch (issue #17), ratios in one run:

1. FGSM and PGD-10 (L-inf 8/255, step 2/255, random start) through the attack catalogue on a
   3×32×32 ResNet-18 with the CIFAR stem (random weights, saved as a state_dict with its model
   card and loaded through the registry as a user's file) against hand-written loops of the same
   algorithms on the bare network, one batch of ``--batch`` random images.
2. The ε slider's latency on torchvision's resnet18 at 224×224 (random weights, ImageNet
   mean/std) through the real Attack tab (offscreen): median time from a slider move to the
   redrawn adversarial image (one forward pass; target <= 100 ms), against one plain forward.
   The survival check that follows each move (PNG round trip, two more forwards) runs on its
   own job after the image is shown; the next move waits for it, as a pausing hand would.
3. The robust-accuracy job (``run_robust``, APGD-CE alone, ``--apgd-steps`` steps) on
   ``--robust-images`` images of a colour folder written here (read, checked and fitted as a
   user's data set) against a plain APGD-CE loop (Croce & Hein 2020, Algorithm 1) on the images
   the job attacks. eps 1/255, so that few images break early and both do the same work.

    uv run python benchmarks/bench_colour.py [--batch 128] [--repeats 3] [--threads 1]
        [--device cpu] [--only attacks|slider|robust]

Contenders interleaved (ABBA), medians after a warm-up; ratio = advstudio / plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "ADVSTUDIO_HOME" not in os.environ:  # the benchmark's runs stay out of the user's history
    import atexit
    import shutil

    os.environ["ADVSTUDIO_HOME"] = tempfile.mkdtemp(prefix="advstudio-bench-")
    atexit.register(shutil.rmtree, os.environ["ADVSTUDIO_HOME"], ignore_errors=True)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_minimal import abba_medians  # noqa: E402 - the sibling script

EPS, ALPHA = 8 / 255, 2 / 255


# --------------------------------------------------------------------------- plain loops


def plain_fgsm(net, x, y, eps):
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net(xa), y), xa)
    return (x + eps * g.sign()).clamp(0, 1)


def plain_pgd(net, x, y, eps, alpha, steps, gen):
    xa = (x + (2 * torch.rand(x.shape, generator=gen) - 1).to(x.device) * eps).clamp(0, 1)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(net(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def plain_apgd(net, x, y, eps, steps, gen):
    """APGD-CE, L-inf (Croce & Hein 2020, Algorithm 1): one run, no restarts."""

    def ball(z):
        return torch.min(torch.max(z, x - eps), x + eps).clamp(0, 1)

    def loss_grad(xa):
        xa = xa.clone().requires_grad_(True)
        loss = F.cross_entropy(net(xa), y, reduction="none")
        return loss.detach(), torch.autograd.grad(loss.sum(), xa)[0]

    x_cur = ball(x + eps * (2 * torch.rand(x.shape, generator=gen).to(x.device) - 1))
    loss, g = loss_grad(x_cur)
    x_prev, x_best, loss_best, g_best = x_cur, x_cur.clone(), loss.clone(), g.clone()
    step = torch.full((len(x), 1, 1, 1), 2 * eps, device=x.device)
    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    rises = torch.zeros(len(x), device=x.device)
    at_check, halved, since = loss.clone(), torch.ones(len(x), dtype=torch.bool), 0
    halved = halved.to(x.device)
    for i in range(steps):
        a = 1.0 if i == 0 else 0.75
        z = ball(x_cur + step * g.sign())
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


# --------------------------------------------------------------------------- set-up


def cifar_resnet_file(folder: Path) -> Path:
    """A random CIFAR-stem ResNet-18 as a user's state_dict with its card."""
    from advstudio.core.models.card import ModelCard, write_card
    from advstudio.core.models.cifar import CifarResNet18

    torch.manual_seed(0)
    path = folder / "cifar_resnet18.pt"
    torch.save(CifarResNet18(10).state_dict(), path)
    write_card(
        ModelCard(input_shape=(3, 32, 32), classes="cifar10", architecture="cifar-resnet18"), path
    )
    return path


def bench_attacks(args, device, folder: Path) -> None:
    from advstudio.core.attacks import catalogue
    from advstudio.core.models.registry import load_model

    model = load_model(f"file:{cifar_resnet_file(folder)}", device).eval()
    net = model.net
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=gen).to(device)
    with torch.no_grad():
        y = net(x).argmax(1)
    fgsm, pgd = catalogue.get("fgsm"), catalogue.get("pgd")
    fgsm_params = fgsm.resolve({"eps": EPS}, "lab")
    pgd_params = pgd.resolve({"eps": EPS, "alpha": ALPHA, "steps": 10}, "lab")

    def seeded():
        return torch.Generator().manual_seed(1)

    for name, ours, plain in (
        (
            "FGSM",
            lambda: fgsm.run(model, x, y, fgsm_params, generator=seeded(), seed=0),
            lambda: plain_fgsm(net, x, y, EPS),
        ),
        (
            "PGD-10",
            lambda: pgd.run(model, x, y, pgd_params, generator=seeded(), seed=0),
            lambda: plain_pgd(net, x, y, EPS, ALPHA, 10, seeded()),
        ),
    ):
        t = abba_medians({"advstudio": ours, "plain": plain}, args.repeats, device)
        print(
            f"{name} on a 3×32×32 CIFAR ResNet-18, batch {args.batch}: advstudio "
            f"{t['advstudio'] * 1000:.0f} ms, plain {t['plain'] * 1000:.0f} ms, ratio "
            f"{t['advstudio'] / t['plain']:.2f}",
            flush=True,
        )


def bench_slider(args, folder: Path) -> None:
    import numpy as np
    import torchvision
    from PIL import Image
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    from advstudio.core.images import load_image
    from advstudio.core.models.classifier import Classifier
    from advstudio.core.runs import RunStore
    from advstudio.ui.attack.tab import AttackTab
    from advstudio.ui.model_controller import ModelController
    from advstudio.ui.state import AppState
    from advstudio.workers import JobManager

    app = QApplication.instance() or QApplication(sys.argv[:1])
    settings = QSettings(str(folder / "bench.ini"), QSettings.Format.IniFormat)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    model = Classifier(
        net,
        (3, 224, 224),
        [f"class {i}" for i in range(1000)],
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        name="resnet18 (random weights)",
    ).eval()
    state = AppState()
    state.torch_loaded = True
    jobs = JobManager()
    jobs.store = RunStore.open()
    tab = AttackTab(state, jobs, ModelController(state, jobs), settings)
    tab.resize(1180, 720)
    tab.show()

    def wait(predicate, timeout=300.0):
        end = time.monotonic() + timeout
        while not predicate():
            QCoreApplication.processEvents()
            if time.monotonic() > end:
                raise TimeoutError
            time.sleep(0.001)

    state.set_model("bench:resnet18", model)
    wait(lambda: not jobs.active)  # the gradient check
    rgb = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "photo.png")
    state.set_image(load_image(folder / "photo.png"))
    tab.access.setCurrentIndex(tab.access.findData("white-box"))
    tab.attack.setCurrentIndex(tab.attack.findData("fgsm"))
    done = []
    tab.attacked.connect(done.append)
    tab.set_eps(0.005)
    tab.run_attack()
    wait(lambda: done)
    checked = []
    tab.survival_checked.connect(checked.append)
    latencies = []
    for value in [6, 8, 10, 12, 14, 16, 18, 20, 22, 24] * 2:
        done.clear()
        checked.clear()
        t0 = time.perf_counter()
        tab.eps_slider.setValue(value)
        wait(lambda: done)
        QCoreApplication.processEvents()  # the repaint
        latencies.append(time.perf_counter() - t0)
        wait(lambda: checked)  # the PNG survival check that follows, before the next move
    x = torch.rand(1, 3, 224, 224)
    forwards = []
    with torch.no_grad():
        for _ in range(10):
            t0 = time.perf_counter()
            net(x)
            forwards.append(time.perf_counter() - t0)
    slider, fwd = statistics.median(latencies), statistics.median(forwards)
    print(
        f"ε slider on resnet18 at 224×224 (CPU): median {slider * 1000:.0f} ms, worst "
        f"{max(latencies) * 1000:.0f} ms over {len(latencies)} moves (target <= 100 ms); one "
        f"plain forward {fwd * 1000:.0f} ms; ratio {slider / fwd:.2f}",
        flush=True,
    )
    jobs.shutdown()
    tab.close()
    del app


def colour_folder_for(net, folder: Path, n: int) -> Path:
    """A flat folder of ``n`` random RGB images labelled with ``net``'s own predictions (so
    that the job attacks nearly all of them), plus one image per class so every label exists."""
    import numpy as np
    from PIL import Image

    root = folder / "colour"
    root.mkdir()
    rng = np.random.default_rng(1)
    rows = ["file,label"]
    for i in range(n + 10):
        arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"{i}.png")
        x = torch.from_numpy(arr.transpose(2, 0, 1).copy()).float()[None] / 255
        with torch.no_grad():
            label = int(net(x).argmax(1)) if i < n else i - n
        rows.append(f"{i}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def bench_robust(args, device, folder: Path) -> None:
    from advstudio.core.attacks.robust import RobustConfig, run_robust
    from advstudio.core.data.sets import load_dataset
    from advstudio.core.jobs import drive
    from advstudio.core.models.registry import load_model

    path = cifar_resnet_file(folder)
    model = load_model(f"file:{path}", device).eval()
    net = model.net
    root = colour_folder_for(net.cpu(), folder, args.robust_images)
    net.to(device)
    n = args.robust_images + 10
    config = RobustConfig(
        model=f"file:{path}",
        eps=1 / 255,
        attacks=("apgd-ce",),
        n_images=n,
        steps=args.apgd_steps,
        batch_size=n,
        dataset=f"folder:{root}",
        split="all",
        device=str(device),
    )
    data = load_dataset(f"folder:{root}", "all")
    x, y = data.x.to(device), data.y.to(device)
    with torch.no_grad():
        right = net(x).argmax(1) == y
    xr, yr = x[right], y[right]
    outcome = {}

    def job():
        outcome["result"] = drive(run_robust(config)).result

    t = abba_medians(
        {
            "advstudio": job,
            "plain": lambda: plain_apgd(net, xr, yr, 1 / 255, args.apgd_steps, _gen()),
        },
        args.repeats,
        device,
    )
    result = outcome["result"]
    print(
        f"robust accuracy (APGD-CE, {args.apgd_steps} steps, eps 1/255) on {n} images of a "
        f"colour folder ({len(xr)} attacked, {result.broken.get('apgd-ce', 0)} broken): job "
        f"{t['advstudio']:.2f} s, plain APGD loop {t['plain']:.2f} s, ratio "
        f"{t['advstudio'] / t['plain']:.2f}",
        flush=True,
    )


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--robust-images", type=int, default=16)
    parser.add_argument("--apgd-steps", type=int, default=20)
    parser.add_argument("--only", choices=("attacks", "slider", "robust"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "attacks"):
            bench_attacks(args, device, folder)
        if args.only in (None, "slider"):
            bench_slider(args, folder)
        if args.only in (None, "robust"):
            bench_robust(args, device, folder)


if __name__ == "__main__":
    main()
