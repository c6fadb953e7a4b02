"""Loading models for the UI: download (with consent) if needed, then load on a worker.

A user file whose format carries code is tried in a child process first
(:mod:`advstudio.core.models.isolation`): a forward that never returns fails after
``probe_timeout_s``, a native crash kills only the child, and Cancel kills the child at once.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from advstudio.core.jobs import Job
from advstudio.ui.state import AppState
from advstudio.workers import JobManager, JobWorker


def _load_job(key: str, device: str, card=None, timeout_s: float | None = None) -> Job:
    from advstudio.core.models.isolation import PROBE_TIMEOUT_S
    from advstudio.core.models.registry import load_model_job

    limit = PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    return (yield from load_model_job(key, device, card, timeout_s=limit))


class ModelController(QObject):
    loading = Signal(str)  # key
    failed = Signal(str, object)  # key, exception
    loaded = Signal(str)  # key

    def __init__(self, state: AppState, jobs: JobManager, parent_widget: QWidget | None = None):
        super().__init__(parent_widget)
        self.state = state
        self.jobs = jobs
        self.parent_widget = parent_widget
        self._pending = ""
        self.current_job: JobWorker | None = None
        self.cards: dict[str, object] = {}  # key -> a card given this session (not writable)
        self.probe_timeout_s: float | None = None  # None: the core's PROBE_TIMEOUT_S
        state.device_changed.connect(self._reload_on_device)

    def ask_download(self, key: str, description: str) -> bool:
        """Patchable in tests. Asks before fetching weights from the internet."""
        answer = QMessageBox.question(
            self.parent_widget,
            "Download weights?",
            f"{key} needs its pretrained weights: {description}.\n\n"
            "Download them now? They are cached for next time.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def request(self, key: str) -> None:
        """Make ``key`` the current model (asynchronously)."""
        self._pending = key
        self.loading.emit(key)
        if key.startswith("torchvision:"):
            from advstudio.core.models.registry import TORCHVISION_ZOO, weights_path

            name = key.split(":", 1)[1]
            if not weights_path(name).is_file():
                if not self.ask_download(name, TORCHVISION_ZOO[name][2]):
                    self.failed.emit(key, None)
                    return
                self._download_then_load(key, name)
                return
        self._load(key)

    def _download_then_load(self, key: str, name: str) -> None:
        from advstudio.core.models.download import download, weights_download_config

        config = weights_download_config(name)

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda _p: self._load(key) if self._pending == key else None)
            w.errored.connect(lambda exc: self.failed.emit(key, exc))
            w.aborted.connect(lambda: self.failed.emit(key, None))

        self.current_job = self.jobs.start(
            lambda: download(config), f"Downloading {name}", connect=connect
        )

    def ask_card(self, exc) -> object | None:
        """Patchable in tests. The card of a card-less file, from the card dialog."""
        from advstudio.ui.widgets.model_card_dialog import ModelCardDialog

        return ModelCardDialog.ask(self.parent_widget, exc.card_path, exc.missing, exc.probe)

    def _card_missing(self, key: str, exc) -> None:
        """A user file without a card: ask for one, keep it beside the file (or for this
        session when the folder is read-only), and load again with it."""
        from advstudio.core.models.card import write_card

        card = self.ask_card(exc)
        if card is None:
            self.failed.emit(key, exc)
            return
        try:
            write_card(card, exc.card_path)
        except OSError:
            self.cards[key] = card
        self._load(key)

    def _errored(self, key: str, exc) -> None:
        from advstudio.core.models.card import MissingCardError

        if isinstance(exc, MissingCardError) and key == self._pending:
            self._card_missing(key, exc)
        else:
            self.failed.emit(key, exc)

    def _load(self, key: str) -> None:
        device, card, limit = self.state.device, self.cards.get(key), self.probe_timeout_s

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda model: self._on_loaded(key, model))
            w.errored.connect(lambda exc: self._errored(key, exc))
            w.aborted.connect(lambda: self.failed.emit(key, None))  # cancelled: keep the old

        self.current_job = self.jobs.start(
            lambda: _load_job(key, device, card, limit),
            f"Loading {Path(key).name}",
            connect=connect,
        )

    def _on_loaded(self, key: str, model) -> None:
        if key != self._pending:
            return  # the user picked another model meanwhile
        self.state.set_model(key, model)
        self.loaded.emit(key)

    def _reload_on_device(self, _device: str) -> None:
        if self.state.model_key:
            self.request(self.state.model_key)
