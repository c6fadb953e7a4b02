"""UI responsiveness, measured through the real widgets (offscreen):

1. Attack tab slider: median latency from a slider move to the redrawn adversarial image
   (white-box FGSM, cached gradient sign; target <= 100 ms), next to one plain-PyTorch forward
   pass of the same model on the same image.
2. GAN tab: worst UI-thread stall while a DCGAN trains with live plots (target <= 50 ms).
3. Live plots with 100,000 points per curve: median redraw time of the six GAN plots.

    uv run python benchmarks/bench_ui.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "ADVSTUDIO_HOME" not in os.environ:  # the benchmark's runs stay out of the user's history
    import atexit
    import shutil
    import tempfile

    os.environ["ADVSTUDIO_HOME"] = tempfile.mkdtemp(prefix="advstudio-bench-")
    atexit.register(shutil.rmtree, os.environ["ADVSTUDIO_HOME"], ignore_errors=True)


def main() -> None:
    import torch
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    from advstudio.core.jobs import Metrics
    from advstudio.core.resources import resources_dir
    from advstudio.responsiveness import MainThreadGarbageCollector
    from advstudio.ui.main_window import MainWindow
    from advstudio.ui.stall import StallMeter

    app = QApplication(sys.argv[:1])
    collector = MainThreadGarbageCollector(app)  # as advstudio.app does
    settings = QSettings(
        os.path.join(os.environ.get("TMPDIR", "/tmp"), "advstudio-bench.ini"),
        QSettings.Format.IniFormat,
    )
    settings.clear()
    window = MainWindow(settings)
    window.labs_ready.connect(collector.freeze)
    window.show()

    def wait(predicate, timeout=120.0):
        end = time.monotonic() + timeout
        while not predicate():
            QCoreApplication.processEvents()
            if time.monotonic() > end:
                raise TimeoutError
            time.sleep(0.001)

    wait(lambda: window.state.model is not None and window.attack_tab is not None)
    window.image_tab.load_path(resources_dir() / "samples" / "digit_7.png", remember=False)
    wait(lambda: window.image_tab.last_prediction is not None)

    # 1. slider
    tab = window.attack_tab
    window.tabs.setCurrentWidget(window.attack_host)
    done = []
    tab.attacked.connect(done.append)
    tab.set_eps(0.05)
    tab.run_attack()
    wait(lambda: done)
    latencies = []
    for value in [60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300] * 3:
        done.clear()
        t0 = time.perf_counter()
        tab.eps_slider.setValue(value)
        wait(lambda: done)
        QCoreApplication.processEvents()  # the repaint
        latencies.append(time.perf_counter() - t0)
    model = window.state.model
    x = torch.rand(1, 1, 28, 28)
    forwards = []
    with torch.no_grad():
        for _ in range(30):
            t0 = time.perf_counter()
            model(x)
            forwards.append(time.perf_counter() - t0)
    slider = statistics.median(latencies)
    fwd = statistics.median(forwards)
    print(
        f"slider update: median {slider * 1000:.1f} ms, worst {max(latencies) * 1000:.1f} ms "
        f"over {len(latencies)} moves (target <= 100 ms); one plain forward pass "
        f"{fwd * 1000:.2f} ms; ratio {slider / fwd:.1f}"
    )

    # 2. GAN training with live plots
    gan = window.gan_tab
    t0 = time.perf_counter()
    window.tabs.setCurrentWidget(window.gan_host)
    window.repaint()  # the tab's first paint: a one-off, reported apart from the training
    first_paint = time.perf_counter() - t0
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        QCoreApplication.processEvents()
        time.sleep(0.005)
    gan.steps.setValue(150)
    gan.eval_every.setValue(50)
    meter = StallMeter()
    meter.start()
    worker = gan.start()
    wait(lambda: worker.is_done, timeout=600)
    worst = meter.stop()
    print(
        f"GAN training with live plots: worst UI-thread stall {worst * 1000:.1f} ms "
        f"(target <= 50 ms), {meter.ticks} timer ticks, {gan.loss_plot.points('loss_d')} steps, "
        f"evaluations every 50 steps; the tab's first paint before it {first_paint * 1000:.0f} ms"
    )

    # 3. 100k points per curve
    gan._reset()
    for step in range(100_000):
        gan._on_metrics(
            Metrics(
                step,
                {
                    "loss_d": 1.0 + (step % 97) / 97,
                    "loss_g": 2.0,
                    "d_x": 0.7,
                    "d_g_z1": 0.3,
                    "d_g_z2": 0.35,
                    "grad_norm_d": 3.0,
                    "grad_norm_g": 1.0,
                    "diversity": 8.0,
                },
            )
        )
    plots = (gan.loss_plot, gan.d_plot, gan.grad_plot, gan.div_plot)
    times = []
    for _ in range(10):
        for p in plots:
            p._dirty = True
        t0 = time.perf_counter()
        for p in plots:
            p.redraw()
        gan.repaint()
        QCoreApplication.processEvents()
        times.append(time.perf_counter() - t0)
    print(
        f"redraw of 4 live plots with 100,000 points per curve (12 curves): median "
        f"{statistics.median(times) * 1000:.1f} ms"
    )
    window.close()


if __name__ == "__main__":
    main()
