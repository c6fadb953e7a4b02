"""Application entry point: ``advstudio`` / ``python -m advstudio``.

Keeps imports light so the window is on screen before PyTorch has loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SELF_TEST_TIMEOUT_MS = 180_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="advstudio", description="A workbench for adversarial ML.")
    parser.add_argument("--self-test", action="store_true",
                        help="start offscreen, load the built-in model and a sample image, run one "
                             "prediction, print the result and exit (0 = OK)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        from advstudio import __version__

        print(__version__)
        return 0
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("advstudio")
    app.setApplicationName("advstudio")
    from PySide6.QtGui import QIcon

    from advstudio.core.resources import resources_dir

    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "advstudio.png")))
    from advstudio.responsiveness import MainThreadGarbageCollector
    from advstudio.ui.main_window import MainWindow

    collector = MainThreadGarbageCollector(app)  # lives as long as the app
    window = MainWindow()
    window.labs_ready.connect(collector.freeze)  # later full collections skip start-up's heap
    window.show()
    if os.environ.get("ADVSTUDIO_REPORT_STARTUP"):
        QTimer.singleShot(0, lambda: print(f"window shown {time.perf_counter() - t0:.3f} s after "
                                           "main()", flush=True))
    if args.self_test:
        from advstudio.ui.self_test import SelfTest

        test = SelfTest(window, SELF_TEST_TIMEOUT_MS)
        test.start()
        app.exec()
        window.jobs.shutdown(30_000)
        return test.exit_code
    code = app.exec()
    window.jobs.shutdown(30_000)  # e.g. quit from the window manager without closeEvent
    return code


if __name__ == "__main__":
    raise SystemExit(main())
