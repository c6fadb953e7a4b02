"""Application entry point: ``advstudio`` / ``python -m advstudio``.

Keeps imports light so the window is on screen before PyTorch has loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SELF_TEST_TIMEOUT_MS = 180_000
# What Qt's xcb platform plugin loads (``ldd .../PySide6/Qt/plugins/platforms/libqxcb.so``) and
# the Debian 12 package of each. Qt aborts (a core dump, no message) when one is missing, so
# main() looks first and says what to install. README.md's set-up section lists the same.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="advstudio", description="A workbench for adversarial ML."
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="start offscreen, load the built-in model and a sample image, run one "
        "prediction, print the result and exit (0 = OK)",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser.parse_args(argv)


def missing_xcb_libraries(load=None) -> list[str]:
    """The libraries of :data:`XCB_LIBRARIES` that cannot be loaded, when Qt would use its xcb
    plugin (Linux, no other platform chosen, not a Wayland session); [] otherwise."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return []
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return []
    if load is None:
        import ctypes

        load = ctypes.CDLL
    missing = []
    for name in XCB_LIBRARIES:
        try:
            load(name)
        except OSError:
            missing.append(name)
    return missing


def explain_missing(missing: list[str]) -> str:
    packages = " ".join(dict.fromkeys(XCB_LIBRARIES[name] for name in missing))
    return (
        f"advstudio cannot open its window: Qt's X11 (xcb) platform plugin needs "
        f"{', '.join(missing)}, which this system lacks.\n"
        f"On Debian or Ubuntu install them with:\n    sudo apt-get install -y {packages}\n"
        "(or run headless with QT_QPA_PLATFORM=offscreen)"
    )


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        from advstudio import __version__

        print(__version__)
        return 0
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    missing = missing_xcb_libraries()
    if missing:
        print(explain_missing(missing), file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer

    from advstudio.responsiveness import MainThreadGarbageCollector
    from advstudio.ui.main_window import MainWindow

    app = _application(adopt=True)
    collector = MainThreadGarbageCollector(app)  # lives as long as the app
    window = MainWindow()
    window.labs_ready.connect(collector.freeze)  # later full collections skip start-up's heap
    window.show()
    if os.environ.get("ADVSTUDIO_REPORT_STARTUP"):
        QTimer.singleShot(
            0,
            lambda: print(
                f"window shown {time.perf_counter() - t0:.3f} s after main()", flush=True
            ),
        )
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


def _application(adopt: bool = False):
    """The running ``QApplication``, or a new one named and iconed as advstudio's (with the
    data folder of Edit ▸ Preferences applied); ``adopt``: name a running one so too (the
    ``advstudio`` command; not another program's app that opens the window from Python)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from advstudio.core.resources import resources_dir

    app = QApplication.instance()
    if app is not None and not adopt:
        return app
    app = app or QApplication(sys.argv[:1])
    app.setOrganizationName("advstudio")
    app.setApplicationName("advstudio")
    data_folder = str(QSettings().value("data_folder", "") or "")
    if data_folder and not os.environ.get("ADVSTUDIO_HOME"):  # Edit ▸ Preferences' data folder
        os.environ["ADVSTUDIO_HOME"] = data_folder
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "advstudio.png")))
    return app


_open_windows: list = []  # windows opened from Python live on without the caller's reference


def open_window(
    model=None,
    card=None,
    data: str | None = None,
    *,
    name: str | None = None,
    image=None,
    block: bool | None = None,
    settings=None,
):
    """Open the window from a script or a notebook, on the user's own model; returns it.

    ``model``: an ``nn.Module`` (registered with ``card`` under ``memory:<name>``, see
    :mod:`advstudio.core.models.memory`) or a registry key (``"file:net.pt2"``,
    ``"memory:net"``, ``"digits-cnn"``); it becomes the current model, listed with its card.
    ``card``: a :class:`~advstudio.core.models.card.ModelCard` or its fields as a dict
    (``input_shape``, ``classes``, optional ``mean``/``std``...). ``data``: a data set for the
    Attack tab's sweep and robust accuracy (``"folder:<path>"``, ``"torchvision:cifar10"``...).
    ``image``: an image file to show and predict.

    As napari's viewer does: a running ``QApplication`` (IPython's ``%gui qt``, a Jupyter
    kernel with the Qt loop, another Qt app) is reused and the call returns at once; otherwise
    one is made, and the call runs its event loop until the window closes, unless the session
    is interactive (IPython, ``python -i``), where it turns IPython's Qt loop on and returns.
    ``block`` forces either way.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    key = None
    if model is not None:
        if isinstance(model, str):
            key = model
        else:
            from advstudio.core.models.memory import register

            key = register(model, card, name)  # a missing card fails here, in the user's code
    if data is not None:
        from advstudio.core.data.spec import check_dataset

        check_dataset(data)
    existing = QApplication.instance()
    app = _application()
    from advstudio.ui.main_window import MainWindow

    window = MainWindow(settings or QSettings("advstudio", "advstudio"))
    _open_windows.append(window)

    def ready() -> None:
        if key is not None:
            window.image_tab.select_model(key)
        if data is not None:
            for panel in (window.attack_tab.sweep, window.attack_tab.robust):
                panel.data.set_dataset(data)

    if window.attack_tab is not None:
        ready()
    else:
        window.labs_ready.connect(ready)
    if image is not None:
        window.image_tab.load_path(image)
    window.show()
    window.raise_()
    interactive = _interactive()
    if block is None:
        block = existing is None and not interactive
    if block:
        app.exec()
        window.jobs.shutdown(30_000)
    elif existing is None and interactive:
        _ipython_qt_loop()
    return window


def _interactive() -> bool:
    """An interactive session: IPython / Jupyter, or ``python -i``."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive) or _ipython() is not None


def _ipython():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _ipython_qt_loop() -> None:
    """Turn on IPython's Qt event loop (``%gui qt``) so the window lives between cells."""
    shell = _ipython()
    if shell is not None and getattr(shell, "active_eventloop", None) != "qt":
        shell.enable_gui("qt")


if __name__ == "__main__":
    raise SystemExit(main())
