"""Wall-clock figures that used to be assertions in the default test suite (where a busy machine
made them flaky); the tests now check the mechanism, this script measures the effect:

1. Main window: worst UI-thread stall while the evaluation job classifies 1,000 test digits
   (was ``worst < 0.25`` s in tests/ui/test_main_window.py).
2. ``gc.freeze`` of a start-up-sized heap: a full collection before / after, and the ratio (was
   ``after < before / 2`` in tests/ui/test_qt_binding.py).
3. Dry runs (one tiny step on fake data) of GAN and adversarial training: seconds each (was
   ``< 30`` s in tests/core/test_gan_train.py and tests/core/test_defence_train.py).

    uv run python benchmarks/bench_responsiveness.py
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "ADVSTUDIO_HOME" not in os.environ:  # the benchmark's runs stay out of the user's history
    import atexit
    import shutil

    os.environ["ADVSTUDIO_HOME"] = tempfile.mkdtemp(prefix="advstudio-bench-")
    atexit.register(shutil.rmtree, os.environ["ADVSTUDIO_HOME"], ignore_errors=True)


def _wait(predicate, timeout: float = 120.0) -> None:
    from PySide6.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while not predicate():
        QCoreApplication.processEvents()
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.001)


def evaluate_stall() -> None:
    from PySide6.QtCore import QSettings

    from advstudio.ui.main_window import MainWindow
    from advstudio.ui.stall import StallMeter

    settings = QSettings(
        os.path.join(tempfile.gettempdir(), "advstudio-bench-resp.ini"), QSettings.Format.IniFormat
    )
    settings.clear()
    window = MainWindow(settings)
    window.show()
    _wait(lambda: window.state.model is not None and not window.jobs.active)
    meter = StallMeter()
    meter.start()
    worker = window.evaluate_current_model(batch_size=20)
    _wait(lambda: worker.is_done)
    worst = meter.stop()
    print(
        f"evaluating 1,000 digits: worst UI-thread stall {worst * 1000:.1f} ms "
        f"({meter.ticks} timer ticks; the old test's limit 250 ms)"
    )
    window.close()
    window.jobs.shutdown()


def gc_freeze(repeats: int = 5) -> None:
    from advstudio.responsiveness import MainThreadGarbageCollector

    guard = MainThreadGarbageCollector()
    keep = [[i] for i in range(300_000)]  # long-lived objects, as after start-up

    def full() -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            gc.collect()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    try:
        before = full()
        guard.freeze()
        after = full()
    finally:
        guard.stop()
    del keep
    print(
        f"full collection with 300,000 long-lived objects: {before * 1000:.1f} ms, after "
        f"gc.freeze {after * 1000:.2f} ms; ratio after / before {after / before:.3f} "
        f"(the old test's limit 0.5)"
    )


def dry_runs() -> None:
    from advstudio.core.defence import TrainConfig, train_classifier
    from advstudio.core.gan.config import GanConfig
    from advstudio.core.gan.train import train_gan
    from advstudio.core.jobs import drive

    with tempfile.TemporaryDirectory() as tmp:
        for name, job in (
            ("GAN", lambda: train_gan(GanConfig(dry_run=True, checkpoint_path=f"{tmp}/g.pt"))),
            (
                "PGD training",
                lambda: train_classifier(
                    TrainConfig(
                        dry_run=True,
                        recipe="pgd",
                        checkpoint_path=f"{tmp}/c.pt",
                        save_path=f"{tmp}/m.pt",
                    )
                ),
            ),
        ):
            t0 = time.perf_counter()
            drive(job())
            print(f"dry run, {name}: {time.perf_counter() - t0:.2f} s (the old test's limit 30 s)")


def main() -> None:
    from PySide6.QtWidgets import QApplication

    from advstudio.responsiveness import MainThreadGarbageCollector

    app = QApplication(sys.argv[:1])
    collector = MainThreadGarbageCollector(app)  # as advstudio.app does
    evaluate_stall()
    collector.stop()
    gc_freeze()
    dry_runs()


if __name__ == "__main__":
    main()
