"""The main window: tabs, menus, status bar (device, running job), drag and drop, settings.

PyTorch is imported on a worker thread after the window is on screen (it takes seconds); until
then the status bar says so and the model controls wait.

Why one status line follows the jobs: each tab has its own message label, but the window's
line is what a user reads first; it used to keep "Ready. Drop an image…" through a sweep and an
old error after later successes. Now every visible job's start, end or failure replaces it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QMessageBox, QTabWidget, QWidget

from advstudio import __version__
from advstudio.ui.image.tab import ImageTab
from advstudio.ui.lazy_tab import LazyTab
from advstudio.ui.model_controller import ModelController
from advstudio.ui.recent_files import RecentFiles
from advstudio.ui.settings_dialog import apply_theme
from advstudio.ui.startup import load_torch_job
from advstudio.ui.state import AppState
from advstudio.ui.widgets.error_box import show_error
from advstudio.ui.widgets.job_indicator import JobIndicator
from advstudio.workers import JobManager, JobWorker

MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".pt2", ".onnx", ".safetensors")
QUIT_WAIT_MS = 2_000
"""How long quitting waits for cancelled jobs. A job stops at its next step; one still running
then is stuck (a model's forward that never returns in native code cannot be interrupted) and
the app quits without it: its run, if recorded, shows as interrupted, as after a kill."""
MINIMUM_SIZE = (960, 600)  # below a 1280x720 screen's usable area, so the window always fits


def open_run_store():
    """The user's run store, or None (runs are then not recorded) if it cannot be opened."""
    from advstudio.core.runs import RunStore

    try:
        return RunStore.open()
    except Exception as exc:  # noqa: BLE001 - the app works without a history
        print(f"advstudio: run history disabled: {exc}", file=sys.stderr)
        return None


class MainWindow(QMainWindow):
    torch_failed = Signal(object)
    labs_ready = Signal()  # PyTorch loaded and every lab tab built

    def __init__(
        self,
        settings: QSettings | None = None,
        load_torch: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"advstudio {__version__}")
        self.setAcceptDrops(True)
        self.settings = settings or QSettings()
        self.state = AppState(self)
        self.jobs = JobManager(self)
        self.jobs.store = open_run_store()
        self.models = ModelController(self.state, self.jobs, self)
        self.last_error_box: QMessageBox | None = None
        self.stuck_on_quit: list[str] | None = None  # set by closeEvent: jobs that did not stop
        self.recent = RecentFiles(self.settings)
        self._startup: JobWorker | None = None

        self.tabs = QTabWidget()
        self.image_tab = ImageTab(self.state, self.jobs, self.models, self.settings)
        self.tabs.addTab(self.image_tab, "Image")
        self.attack_tab = None  # built once PyTorch is loaded (it needs torch and pyqtgraph)
        self.attack_host = LazyTab("Attack")
        self.tabs.addTab(self.attack_host, "Attack")
        self.gan_tab = None
        self.gan_host = LazyTab("GAN")
        self.tabs.addTab(self.gan_host, "GAN")
        self.playground_tab = None
        self.playground_host = LazyTab("Playground")
        self.tabs.addTab(self.playground_host, "Playground")
        self.defence_tab = None
        self.defence_host = LazyTab("Defence")
        self.tabs.addTab(self.defence_host, "Defence")
        self.certify_tab = None
        self.certify_host = LazyTab("Certify")
        self.tabs.addTab(self.certify_host, "Certify")
        self.poisoning_tab = None
        self.poisoning_host = LazyTab("Poisoning")
        self.tabs.addTab(self.poisoning_host, "Poisoning")
        self.runs_tab = None
        self.runs_host = LazyTab("Runs")
        self.tabs.addTab(self.runs_host, "Runs")
        self.setCentralWidget(self.tabs)

        self.status_message = QLabel("Loading PyTorch… (the rest of the window works already)")
        self.device_label = QLabel("Device: …")
        self.device_label.setToolTip("Where models run. Change it in Edit ▸ Preferences (Ctrl+,)")
        self.job_indicator = JobIndicator(self.jobs)
        bar = self.statusBar()
        bar.addWidget(self.status_message, 1)
        bar.addPermanentWidget(self.job_indicator)
        bar.addPermanentWidget(self.device_label)

        self._build_menus()
        self.state.device_changed.connect(self._show_device)
        self.state.model_changed.connect(self._on_model)
        self.image_tab.image_error.connect(lambda m: self.status_message.setText(m))
        self.image_tab.image_loaded.connect(self._clear_image_error)
        self.state.image_changed.connect(self._remember_image)
        self.state.model_changed.connect(self._remember_model)
        self.jobs.job_started.connect(self._follow_job)
        apply_theme(str(self.settings.value("theme", "system")))
        self.setMinimumSize(*MINIMUM_SIZE)
        self.resize(1180, 720)
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if load_torch:
            self.start_torch()

    # -- start-up -----------------------------------------------------------------------------
    def start_torch(self) -> JobWorker:
        pref = str(self.settings.value("device", "auto"))

        def connect(w: JobWorker) -> None:
            w.returned.connect(self._on_torch_ready)
            w.errored.connect(self._on_torch_failed)
            w.log.connect(self.status_message.setText)

        self._startup = self.jobs.start(
            lambda: load_torch_job(pref), "Loading PyTorch", connect=connect, pausable=False
        )
        return self._startup

    def _on_torch_ready(self, device: str) -> None:
        self.state.torch_loaded = True
        self.state.device = device
        self._show_device(device)
        self.status_message.setText(
            "Ready. Drop an image on the window, press Ctrl+O, or pick a sample."
        )
        self.preferences_action.setEnabled(True)
        self.state.torch_ready.emit()
        from advstudio.ui.attack.tab import AttackTab

        self.attack_tab = AttackTab(self.state, self.jobs, self.models, self.settings)
        self.attack_host.set_content(self.attack_tab)
        from advstudio.ui.gan.tab import GanTab

        self.gan_tab = GanTab(self.state, self.jobs, self.models, self.settings)
        self.gan_host.set_content(self.gan_tab)
        from advstudio.ui.playground.tab import PlaygroundTab

        self.playground_tab = PlaygroundTab(self.state, self.jobs, self.models, self.settings)
        self.playground_host.set_content(self.playground_tab)
        from advstudio.ui.defence.tab import DefenceTab

        self.defence_tab = DefenceTab(self.state, self.jobs, self.models, self.settings)
        self.defence_host.set_content(self.defence_tab)
        self.defence_tab.use_model.connect(self.attack_with_model)
        from advstudio.ui.certify.tab import CertifyTab

        self.certify_tab = CertifyTab(self.state, self.jobs, self.models, self.settings)
        self.certify_host.set_content(self.certify_tab)
        from advstudio.ui.poisoning.tab import PoisoningTab

        self.poisoning_tab = PoisoningTab(self.state, self.jobs, self.models, self.settings)
        self.poisoning_host.set_content(self.poisoning_tab)
        from advstudio.ui.runs.tab import RunsTab

        self.runs_tab = RunsTab(self.state, self.jobs, self.models, self.settings)
        self.runs_host.set_content(self.runs_tab)
        self.labs_ready.emit()

    def _on_torch_failed(self, exc: BaseException) -> None:
        self.status_message.setText("PyTorch could not be loaded: models are unavailable.")
        self.last_error_box = show_error(self, "PyTorch could not be loaded", exc)
        self.torch_failed.emit(exc)

    def _show_device(self, device: str) -> None:
        from advstudio.core.devices import describe

        self.device_label.setText(f"Device: {describe(device)}")

    # -- menus --------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open image…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.image_tab.open_dialog)
        file_menu.addAction(open_action)
        open_model = QAction("Open &model file…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        open_model.triggered.connect(self.image_tab.open_model_dialog)
        file_menu.addAction(open_model)
        self.recent_menu = QMenu("&Recent files", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addMenu(self.recent_menu)
        self._fill_recent()
        export_config = QAction(
            "E&xport job as config…", self, shortcut=QKeySequence("Ctrl+Shift+E")
        )
        export_config.setToolTip(
            "Save the current tab's job settings as a config file for "
            "advstudio-run (headless, or on a GPU server)"
        )
        export_config.triggered.connect(self.export_job_config)
        file_menu.addAction(export_config)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        edit_menu = self.menuBar().addMenu("&Edit")
        self.preferences_action = QAction(
            "&Preferences…", self, shortcut=QKeySequence("Ctrl+,"), enabled=False
        )
        self.preferences_action.triggered.connect(self.open_preferences)
        edit_menu.addAction(self.preferences_action)

        jobs_menu = self.menuBar().addMenu("&Jobs")
        self.evaluate_action = QAction(
            "&Evaluate model on the test digits",
            self,
            shortcut=QKeySequence("Ctrl+E"),
            enabled=False,
        )
        # a lambda: triggered(bool) would otherwise arrive as batch_size (False: 'Ctrl+E always
        # fails', issue #19)
        self.evaluate_action.triggered.connect(lambda: self.evaluate_current_model())
        jobs_menu.addAction(self.evaluate_action)
        cancel_action = QAction("&Cancel running job", self, shortcut=QKeySequence("Ctrl+."))
        cancel_action.triggered.connect(self.job_indicator.cancel_current)
        jobs_menu.addAction(cancel_action)

        help_menu = self.menuBar().addMenu("&Help")
        self.guide_action = QAction("&Guide", self, shortcut=QKeySequence.StandardKey.HelpContents)
        self.guide_action.triggered.connect(self.open_guide)
        help_menu.addAction(self.guide_action)
        self.shortcuts_action = QAction(
            "&Keyboard shortcuts", self, shortcut=QKeySequence("Ctrl+/")
        )
        self.shortcuts_action.triggered.connect(self.open_shortcuts)
        help_menu.addAction(self.shortcuts_action)
        help_menu.addSeparator()
        about = QAction("&About advstudio", self)
        about.triggered.connect(
            lambda: QMessageBox.about(
                self,
                "About advstudio",
                f"<b>advstudio {__version__}</b><p>A workbench for adversarial machine learning."
                "<p>Bundled digits: MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0.",
            )
        )
        help_menu.addAction(about)

    def open_preferences(self) -> None:
        from advstudio.core.devices import available_devices
        from advstudio.ui.settings_dialog import SettingsDialog

        current = str(self.settings.value("device", "auto"))
        dialog = SettingsDialog(
            available_devices(),
            current,
            self,
            data_folder=str(self.settings.value("data_folder", "")),
            theme=str(self.settings.value("theme", "system")),
        )
        self.preferences_dialog = dialog  # tests accept it
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_device_preference(dialog.device)
            self.settings.setValue("data_folder", dialog.data_folder)
            self.settings.setValue("theme", dialog.theme)
            apply_theme(dialog.theme)

    def apply_device_preference(self, preference: str) -> None:
        from advstudio.core.devices import pick_device

        self.settings.setValue("device", preference)
        self.state.set_device(str(pick_device(preference)))

    # -- help ---------------------------------------------------------------------------------
    def open_tab(self, name: str) -> None:
        """Show the tab called ``name`` (the Guide's "Try it" buttons)."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                self.tabs.setCurrentIndex(i)
                return

    def open_guide(self) -> None:
        from advstudio.ui.guide import GuideDialog

        self.guide = GuideDialog(self.open_tab, self)
        self.guide.show()

    def open_shortcuts(self) -> None:
        from advstudio.ui.guide import ShortcutsDialog, shortcuts

        self.shortcuts_dialog = ShortcutsDialog(shortcuts(self), self)
        self.shortcuts_dialog.show()

    # -- recent files -------------------------------------------------------------------------
    def _remember_image(self, image) -> None:
        if getattr(image, "path", None) is not None:
            self.recent.add("image", image.path)

    def _remember_model(self, _model) -> None:
        if self.state.model_key.startswith("file:"):
            self.recent.add("model", Path(self.state.model_key[5:]))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        entries = self.recent.entries()
        for kind, path in entries:
            action = self.recent_menu.addAction(f"{path.name}  ({kind}, {path.parent})")
            action.triggered.connect(lambda _=False, k=kind, p=path: self.open_recent(k, p))
        if not entries:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear the list")
        clear.triggered.connect(self.recent.clear)
        clear.setEnabled(bool(entries))

    def open_recent(self, kind: str, path: Path) -> None:
        if kind == "model":
            if self.state.torch_loaded:
                self.image_tab.select_model(f"file:{path}")
        else:
            self.tabs.setCurrentWidget(self.image_tab)
            self.image_tab.load_path(path)

    # -- jobs ---------------------------------------------------------------------------------
    def _follow_job(self, worker: JobWorker) -> None:
        """The status line says what runs, then how it ended (see the module's docstring)."""
        if not worker.show_in_status or worker is self._startup:
            return
        running = f"{worker.title}…"
        self.status_message.setText(running)

        def ended(text: str) -> None:
            if self.status_message.text() == running:  # a tab's own result text stays
                self.status_message.setText(text)

        worker.returned.connect(lambda _r: ended(f"{worker.title}: done."))
        worker.aborted.connect(lambda: ended(f"{worker.title}: cancelled."))
        worker.errored.connect(
            lambda exc: self.status_message.setText(
                f"{worker.title} failed: {(str(exc) or type(exc).__name__).splitlines()[0]}"
            )
        )

    def _on_model(self, model) -> None:
        self.evaluate_action.setEnabled(
            model is not None and model.num_classes == 10 and model.input_shape[0] == 1
        )

    def evaluate_current_model(self, batch_size: int = 100) -> JobWorker | None:
        from advstudio.core.evaluate import EvaluateConfig, evaluate

        if not self.evaluate_action.isEnabled():
            return None
        config = EvaluateConfig(
            model=self.state.model_key, device=self.state.device, batch_size=batch_size
        )

        def done(result) -> None:
            self.status_message.setText(
                f"{self.state.model_key}: {result.accuracy * 100:.1f} % correct on "
                f"{result.n:,} test digits"
            )

        def connect(w: JobWorker) -> None:
            w.returned.connect(done)
            w.errored.connect(self.report_error)
            w.aborted.connect(lambda: self.status_message.setText("Evaluation cancelled."))

        return self.jobs.start(
            lambda: evaluate(config),
            f"Evaluating {config.model}",
            connect=connect,
            record=("evaluate", config),
        )

    def export_job_config(self) -> Path | None:
        """The current tab's job as a config file (evaluation on the Image tab)."""
        from advstudio.core.errors import ConfigError
        from advstudio.core.jobkinds import config_to_dict
        from advstudio.ui.widgets.config_export import export_config_dialog

        host = self.tabs.currentWidget()
        widget = getattr(host, "content", None) or host
        name = self.tabs.tabText(self.tabs.currentIndex())
        try:
            if widget is self.image_tab:
                from advstudio.core.evaluate import EvaluateConfig

                if not self.evaluate_action.isEnabled():
                    raise ConfigError(
                        "pick a digit model first: the evaluation runs on the bundled test digits"
                    )
                kind, config = (
                    "evaluate",
                    EvaluateConfig(model=self.state.model_key, device=self.state.device),
                )
            elif hasattr(widget, "job_config"):
                kind, config = widget.job_config()
            else:
                self.status_message.setText(
                    f"The {name} tab has no job to export; the Image, Attack, GAN, Defence and "
                    "Poisoning tabs do."
                )
                return None
        except (ConfigError, OSError) as exc:
            self.last_error_box = show_error(self, "Cannot export this job", exc)
            return None
        return export_config_dialog(
            self, self.settings, kind, config_to_dict(config), f"the {name} tab"
        )

    def attack_with_model(self, key: str) -> None:
        """A trained model from the Defence tab becomes the current model; show the Attack tab."""
        self.image_tab.select_model(key)
        self.tabs.setCurrentWidget(self.attack_host)

    def report_error(self, exc: BaseException) -> None:
        self.last_error_box = show_error(self, "The job failed", exc)

    def _clear_image_error(self, description: str) -> None:
        """A later successful load replaces the status bar's old image error (only that)."""
        if self.status_message.text() == self.image_tab.last_image_error:
            self.status_message.setText(description)

    # -- drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        files = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not files:
            return
        event.acceptProposedAction()
        path = files[0]
        if path.suffix.lower() in MODEL_SUFFIXES:
            if self.state.torch_loaded:
                self.image_tab.select_model(f"file:{path}")
            else:
                self.status_message.setText("PyTorch is still loading; drop the model again soon.")
            return
        self.tabs.setCurrentWidget(self.image_tab)
        self.image_tab.load_path(path)

    # -- shutdown -----------------------------------------------------------------------------
    def ask(self, title: str, question: str) -> bool:
        """A yes / no question (patchable in tests)."""
        return QMessageBox.question(self, title, question) == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        running = [
            w.title
            for w in self.jobs.active  # work the user would lose
            if w.recorded and not w.cancel_requested
        ]
        if running and not self.ask(
            "Quit advstudio",
            f"{', '.join(running)} still running. "
            "Stop and quit? (A stopped training resumes from the Runs "
            "tab.)",
        ):
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        if self.jobs.active:
            self.status_message.setText("Stopping running jobs…")
            self.repaint()
        self.jobs.shutdown(QUIT_WAIT_MS)
        self.stuck_on_quit = self.jobs.stuck()
        if self.stuck_on_quit:
            print(
                f"advstudio: {', '.join(self.stuck_on_quit)} did not stop within "
                f"{QUIT_WAIT_MS / 1000:g} s of its cancel (stuck in code that never returns?); "
                "quitting without waiting for it",
                file=sys.stderr,
            )
        super().closeEvent(event)
