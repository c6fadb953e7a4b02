"""GAN playground speed, measured through the real widgets (offscreen):

1. A plain PyTorch loop of the same networks and step (no job, no Qt): the reference.
2. The playground job driven headless by ``jobs.drive`` (job overhead: live parameters,
   metrics, snapshots and coverage ~20 times a second).
3. The job on the real ``JobWorker`` thread with the playground tab drawing it live: steps per
   second, plot frames per second, and the worst UI-thread stall (StallMeter, target <= 50 ms).

Each for the default settings (non-saturating, Adam, batch 256, 1 D step) and for WGAN-GP with
5 critic steps. Ratios are job / plain loop.

    uv run python benchmarks/bench_playground.py [seconds per measurement (8)] [--no-gc-freeze]

Like the app (``advstudio/responsiveness.py``, frozen once the labs are built), the benchmark moves
every
object alive after start-up into Python's permanent generation (``gc.freeze()``) before
measuring; with PyTorch and pyqtgraph loaded a full collection otherwise walks ~220,000 objects
and took ~170 ms here, which is then the worst stall. ``--no-gc-freeze`` shows that.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SETTINGS = {
    "non-saturating, Adam, batch 256, k=1": dict(loss="non-saturating", batch_size=256, d_steps=1),
    "WGAN-GP, Adam, batch 256, k=5": dict(loss="wgan-gp", batch_size=256, d_steps=5),
}


def plain_loop(seconds: float, loss: str, batch_size: int, d_steps: int) -> float:
    """Steps per second of a hand-written loop: same MLPs, losses, optimiser, one thread."""
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    def mlp(n_in, n_out, act):
        return nn.Sequential(
            nn.Linear(n_in, 64),
            act(),
            nn.Linear(64, 64),
            act(),
            nn.Linear(64, 64),
            act(),
            nn.Linear(64, n_out),
        )

    torch.manual_seed(0)
    G, D = mlp(2, 2, nn.ReLU), mlp(2, 1, lambda: nn.LeakyReLU(0.2))
    opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.9), fused=True)
    angles = torch.arange(8) * 2 * math.pi / 8
    centres = 2 * torch.stack([angles.cos(), angles.sin()], 1)

    def real_batch():
        return centres[torch.randint(8, (batch_size,))] + 0.05 * torch.randn(batch_size, 2)

    def step():
        for _ in range(d_steps):
            real = real_batch()
            with torch.no_grad():
                fake = G(torch.randn(batch_size, 2))
            out = D(torch.cat([real, fake]))
            r, f = out[:batch_size], out[batch_size:]
            if loss == "wgan-gp":
                eps = torch.rand(batch_size, 1)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                loss_d = f.mean() - r.mean() + 10 * ((grad.norm(dim=1) - 1) ** 2).mean()
            else:
                loss_d = F.softplus(-r).mean() + F.softplus(f).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        f = D(G(torch.randn(batch_size, 2)))
        loss_g = -f.mean() if loss == "wgan-gp" else F.softplus(-f).mean()
        opt_g.zero_grad()
        loss_g.backward()
        D.requires_grad_(True)
        opt_g.step()
        return float(loss_d.detach()), float(loss_g.detach())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(20):
            step()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def headless_job(seconds: float, **params) -> float:
    from advstudio.core.playground import (
        LiveParams,
        Playground,
        PlaygroundParams,
        make_target,
        run_playground,
    )

    play = Playground(PlaygroundParams(make_target("ring"), **params))
    job = run_playground(play, LiveParams(play.params))
    for _ in range(20):
        next(job)
    start_steps, start = play.steps_done, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(job)
    rate = (play.steps_done - start_steps) / (time.perf_counter() - start)
    job.close()
    return rate


def busy_meter():
    """A StallMeter that also records the UI thread's own CPU time within each gap: a gap the
    thread spent computing is a stall our code caused; the rest of a gap it waited (for a CPU
    core on a busy machine, or for the GIL)."""
    from advstudio.ui.stall import StallMeter

    class BusyStallMeter(StallMeter):
        def start(self) -> None:
            self.worst_busy_s, self._cpu = 0.0, time.thread_time()
            super().start()

        def _tick(self) -> None:
            cpu = time.thread_time()
            self.worst_busy_s = max(self.worst_busy_s, cpu - self._cpu)
            self._cpu = cpu
            super()._tick()

    return BusyStallMeter()


def live_tab(tab, seconds: float, **params) -> tuple[float, float, float, float]:
    """(steps/s, plot frames/s, worst stall in s, worst UI-thread busy stretch in s) of the job
    on its thread, drawn live."""
    from PySide6.QtCore import QCoreApplication

    tab.loss.setCurrentIndex(tab.loss.findData(params["loss"]))
    tab.batch.setValue(params["batch_size"])
    tab.d_steps.setValue(params["d_steps"])

    def pump(duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.001)

    worker = tab.start()
    pump(1.0)  # warm up
    meter = busy_meter()
    meter.start()
    steps0, frames0, start = tab.playground.steps_done, tab.frames, time.perf_counter()
    pump(seconds)
    elapsed = time.perf_counter() - start
    steps, frames = tab.playground.steps_done - steps0, tab.frames - frames0
    worst = meter.stop()
    tab.stop()
    while not worker.is_done:
        pump(0.01)
    return steps / elapsed, frames / elapsed, worst, meter.worst_busy_s


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    seconds = float(args[0]) if args else 8.0
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from advstudio.responsiveness import MainThreadGarbageCollector
    from advstudio.ui.playground.tab import PlaygroundTab
    from advstudio.ui.state import AppState
    from advstudio.workers import JobManager

    app = QApplication(sys.argv[:1])
    MainThreadGarbageCollector(app)
    settings = QSettings(
        os.path.join(os.environ.get("TMPDIR", "/tmp"), "advstudio-bench-playground.ini"),
        QSettings.Format.IniFormat,
    )
    settings.clear()
    jobs = JobManager()
    tab = PlaygroundTab(AppState(), jobs, settings=settings)
    tab.resize(1400, 800)
    tab.show()
    tab.show_arrows.setChecked(True)
    frozen = "--no-gc-freeze" not in sys.argv
    if frozen:
        import gc

        gc.collect()
        gc.freeze()
    print(
        f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
        f"{', gc frozen after start-up' if frozen else ''}"
    )
    for name, params in SETTINGS.items():
        plain = plain_loop(seconds, **params)
        headless = headless_job(seconds, **params)
        steps, fps, worst, busy = live_tab(tab, seconds, **params)
        print(
            f"{name}: plain loop {plain:.0f} steps/s; job headless {headless:.0f} steps/s "
            f"(ratio {headless / plain:.2f}); job on its thread with the live plot "
            f"{steps:.0f} steps/s (ratio {steps / plain:.2f}), plot {fps:.1f} frames/s, "
            f"worst UI-thread stall {worst * 1000:.0f} ms (of which the UI thread computed "
            f"at most {busy * 1000:.0f} ms)"
        )
    jobs.shutdown()
    print(f"(load average afterwards {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
