"""``advstudio --self-test``: the packaged installer's smoke test, through the real window."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from advstudio.core.resources import resources_dir


class SelfTest(QObject):
    def __init__(self, window, timeout_ms: int) -> None:
        super().__init__(window)
        self.window = window
        self.timeout_ms = timeout_ms
        self.exit_code = 1

    def start(self) -> None:
        QTimer.singleShot(self.timeout_ms, lambda: self._finish(False, "timed out"))
        self.window.models.loaded.connect(self._on_model)
        self.window.models.failed.connect(
            lambda key, exc: self._finish(False, f"model {key} failed to load: {exc}")
        )
        self.window.torch_failed.connect(lambda exc: self._finish(False, f"torch: {exc}"))
        self.window.image_tab.predicted.connect(self._on_prediction)
        self.window.image_tab.image_error.connect(
            lambda message: self._finish(False, f"could not load the sample: {message}")
        )

    def _on_model(self, key: str) -> None:
        if self.window.state.image is None:
            sample = resources_dir() / "samples" / "digit_7.png"
            self.window.image_tab.load_path(sample, remember=False)  # errors: image_error

    def _on_prediction(self, prediction) -> None:
        import torch

        ok = prediction.names[0] == "7"
        self._finish(
            ok,
            f"{self.window.state.model_key} predicts {prediction.names[0]} "
            f"({prediction.probs[0] * 100:.1f} %) for digit_7.png on "
            f"{self.window.state.device}, torch {torch.__version__}",
        )

    def _finish(self, ok: bool, message: str) -> None:
        if self.exit_code == 0 or (not ok and self.exit_code == 2):
            return
        print(
            f"self-test {'OK' if ok else 'FAILED'}: {message}",
            file=sys.stdout if ok else sys.stderr,
            flush=True,
        )
        self.exit_code = 0 if ok else 2
        self.window.close()
        QApplication.instance().exit(self.exit_code)
