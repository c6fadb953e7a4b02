"""Run one tab on its own (``python -m advstudio.ui.image.tab``), like Orange's WidgetPreview."""

from __future__ import annotations

import sys


def run_alone(tab_class) -> int:
    from PySide6.QtWidgets import QApplication

    from advstudio.responsiveness import MainThreadGarbageCollector
    from advstudio.ui.model_controller import ModelController
    from advstudio.ui.startup import load_torch_job
    from advstudio.ui.state import AppState
    from advstudio.workers import JobManager

    app = QApplication.instance() or QApplication(sys.argv)
    MainThreadGarbageCollector(app)
    state, jobs = AppState(), JobManager()
    tab = tab_class(state, jobs, ModelController(state, jobs))

    def ready(device: str) -> None:
        state.torch_loaded = True
        state.device = device
        state.torch_ready.emit()

    jobs.start(
        lambda: load_torch_job("auto"),
        "Loading PyTorch",
        connect=lambda w: w.returned.connect(ready),
    )
    tab.resize(1100, 650)
    tab.show()
    code = app.exec()
    jobs.shutdown()
    return code
