"""Screenshots of every tab mid-job, at 1280×720 and 1920×1080, into this folder.

    QT_QPA_PLATFORM=offscreen uv run python docs/screenshots/make.py            # every tab
    QT_QPA_PLATFORM=offscreen uv run python docs/screenshots/make.py gan defence
    xvfb-run -a uv run python docs/screenshots/make.py --theme dark gan   # dark-gan-*.png

For each tab it starts the tab's own job the way its button does, waits for a few of the job's
progress or metrics events, draws the live plots, grabs the window at both sizes (the status bar
shows the job's phase, count and ETA) and cancels the job. The Runs tab is grabbed while a
poisoning job runs, with the runs this script recorded. Everything it writes (settings, the run
store) goes to a temporary folder; the PNGs are palette-reduced so each stays small.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = ((1280, 720), (1920, 1080))
TABS = ("image", "attack", "gan", "playground", "defence", "certify", "poisoning", "runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tabs", nargs="*", help=f"some of {', '.join(TABS)} (default: all)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument("--events", type=int, default=12, help="events to wait for per job")
    args = parser.parse_args(argv)
    tabs = args.tabs or list(TABS)
    unknown = sorted(set(tabs) - set(TABS))
    if unknown:
        parser.error(f"unknown tab {', '.join(unknown)}; choose from {', '.join(TABS)}")
    home = Path(tempfile.mkdtemp(prefix="advstudio-shots-"))
    os.environ.setdefault("ADVSTUDIO_HOME", str(home / "home"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("advstudio")
    app.setApplicationName("advstudio-screenshots")
    from advstudio.ui.main_window import MainWindow
    from advstudio.ui.settings_dialog import apply_theme

    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("theme", args.theme)
    window = MainWindow(settings)
    apply_theme(args.theme)
    window.resize(*SIZES[0])
    window.show()
    shots = Shots(app, window, args.out, args.events, "dark-" if args.theme == "dark" else "")
    shots.wait(lambda: window.state.model is not None, 180, "the default model")
    shots.wait(lambda: not window.jobs.active, 60, "the start-up jobs")
    digit = home / "digit.png"
    _write_digit(digit)
    window.image_tab.load_path(digit)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in tabs:
        getattr(shots, name)()
        print(f"{name}: {', '.join(shots.saved[-len(SIZES) :])}", flush=True)
    window.jobs.shutdown()
    return 0


def _write_digit(path: Path) -> None:
    """The first test digit as a PNG (what a user would drop on the window)."""
    from PySide6.QtGui import QImage

    from advstudio.core.data import load_digits

    x = (load_digits("test")[0][0, 0] * 255).round().byte().contiguous().numpy()
    image = QImage(x.data, 28, 28, 28, QImage.Format.Format_Grayscale8)
    image.copy().save(str(path))


class Shots:
    def __init__(self, app, window, out: Path, events: int, prefix: str = "") -> None:
        self.app, self.window, self.out, self.events = app, window, out, events
        self.prefix = prefix  # "dark-" for the dark theme's pictures
        self.saved: list[str] = []
        self.pending = None  # a job left running for the next grab (the Runs tab's)

    # -- helpers -------------------------------------------------------------------------------
    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            self.app.processEvents()
            time.sleep(0.02)

    def settle(self, seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def mid_job(
        self,
        host,
        start: Callable[[], object],
        name: str,
        events: int | None = None,
        keep: bool = False,
        until: Callable[[object], bool] | None = None,
    ) -> None:
        """Show ``host``, start its job, wait for ``events`` of its progress and metrics
        events, grab, cancel it (``keep``: leave it running for the next grab)."""
        self.window.tabs.setCurrentWidget(host)
        self.settle(0.2)
        seen = [0]
        worker = start()
        if worker is None:
            raise RuntimeError(f"{name}: the job did not start")
        count = lambda *_: seen.__setitem__(0, seen[0] + 1)  # noqa: E731
        worker.progress.connect(count)
        worker.metrics.connect(count)
        wanted = self.events if events is None else events
        enough = until or (lambda _w: seen[0] >= wanted)
        self.wait(lambda: enough(worker) or worker.is_done, 600, f"{name}'s events")
        self.settle(0.6)  # the status bar's ETA needs a rate; the legends lay out
        worker.blockSignals(True)  # a still picture: no event lands between layout and grab
        try:
            self.grab(name)
        finally:
            worker.blockSignals(False)
        if worker.is_done:
            print(f"warning: {name}'s job ended before its last screenshot", file=sys.stderr)
        if keep:
            self.pending = worker
        else:
            self.stop(worker)

    def stop(self, worker) -> None:
        if not worker.is_done:
            worker.cancel()
        self.wait(lambda: worker.is_done, 120, "the job to stop")
        self.settle(0.3)

    def grab(self, name: str) -> None:
        from advstudio.ui.widgets.live_plot import LivePlot

        for width, height in SIZES:
            self.window.resize(width, height)
            self.settle(0.5)
            for plot in self.window.findChildren(LivePlot):
                plot.redraw_now()
            self.settle(0.2)
            image = self.window.grab().toImage()
            path = self.out / f"{self.prefix}{name}-{width}x{height}.png"
            _save_small(image, path)
            self.saved.append(path.name)
        self.window.resize(*SIZES[0])

    # -- the tabs ------------------------------------------------------------------------------
    def image(self) -> None:
        w = self.window
        # one digit a batch: slow enough to be caught running at both sizes
        self.mid_job(w.image_tab, lambda: w.evaluate_current_model(batch_size=1), "image", 3)

    def attack(self) -> None:
        tab = self.window.attack_tab
        self.window.tabs.setCurrentWidget(self.window.attack_host)
        self.wait(lambda: not self.window.jobs.active, 120, "the gradient check")
        worker = tab.run_attack()  # an FGSM result above the sweep: Before / After filled
        if worker is not None:
            self.wait(lambda: worker.is_done, 120, "the attack")
        tab.show_panel(tab.sweep)
        self.mid_job(self.window.attack_host, tab.sweep.start, "attack")

    def gan(self) -> None:
        tab = self.window.gan_tab
        tab.eval_every.setValue(20)  # a few Fréchet / coverage points to see
        self.mid_job(self.window.gan_host, tab.start, "gan", 90)

    def playground(self) -> None:
        tab = self.window.playground_tab
        self.mid_job(self.window.playground_host, tab.start, "playground")

    def defence(self) -> None:
        """Caught in its held-out evaluation: a phase of its own in the status bar."""
        tab = self.window.defence_tab
        tab.epochs.setValue(1)
        tab.recipe.setCurrentIndex(max(0, tab.recipe.findData("fgsm")))
        # every column on all 1,000 test digits (the default 100 passes too quickly to catch)
        tab.robust_n.setValue(1000)
        self.mid_job(
            self.window.defence_host,
            tab.start,
            "defence",
            until=lambda w: (
                w.last_progress is not None
                and w.last_progress.phase.startswith("evaluating")
                and w.last_progress.done >= 300
            ),
        )

    def certify(self) -> None:
        tab = self.window.certify_tab
        self.mid_job(self.window.certify_host, tab.certify_test, "certify")

    def poisoning(self) -> None:
        tab = self.window.poisoning_tab
        self.mid_job(self.window.poisoning_host, tab.start, "poisoning", keep=True)

    def runs(self) -> None:
        """The run history while a job runs (the poisoning job, or a GAN started here)."""
        w = self.window
        worker = self.pending
        if worker is None or worker.is_done:
            w.tabs.setCurrentWidget(w.gan_host)
            worker = w.gan_tab.start()
            self.wait(lambda: worker.last_progress is not None, 120, "a job for the Runs tab")
        w.tabs.setCurrentWidget(w.runs_host)
        w.runs_tab.refresh()
        runs = w.runs_tab.runs
        shown = [r.id for r in runs if r.kind == "gan"][:1] or [r.id for r in runs][:1]
        w.runs_tab.select(shown)  # its curves and its config as a table
        pick = w.runs_tab.metric_choice
        pick.setCurrentIndex(max(0, pick.findText("loss_d")))
        self.settle(1.0)
        self.grab("runs")
        self.stop(worker)
        self.pending = None


def _save_small(image, path: Path) -> None:
    """A PNG of 256 colours picked for this picture (median cut, dithered: the playground's
    heat map keeps its gradient; Qt's own 8-bit conversion banded it), a few dozen kB."""
    from PIL import Image
    from PySide6.QtGui import QImage

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    pixels = bytes(rgb.constBits())[: rgb.bytesPerLine() * rgb.height()]
    picture = Image.frombuffer(
        "RGB", (rgb.width(), rgb.height()), pixels, "raw", "RGB", rgb.bytesPerLine(), 1
    )
    small = picture.quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
    )
    small.save(path, optimize=True)


if __name__ == "__main__":
    raise SystemExit(main())
