"""Runs tab: the history of recorded runs (evaluations, sweeps, GAN and defence trainings):
filter, open a run's curves, overlay several to compare, rerun with the same config, resume a
stopped training from its checkpoint, export its config for ``advstudio-run``, delete, export as
a zip or as TensorBoard event files, open its folder; a run's saved image (a GAN's final sample
grid) is shown beside its details, its config as a table (two runs: what differs).

Run alone: ``python -m advstudio.ui.runs.tab``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.jobkinds import JOB_KINDS
from advstudio.core.runs.headline import headline
from advstudio.ui.runs.config_view import ConfigTable
from advstudio.ui.state import AppState
from advstudio.ui.widgets.config_export import export_config_dialog
from advstudio.ui.widgets.error_box import show_error
from advstudio.ui.widgets.live_plot import legend_below
from advstudio.ui.widgets.plot_theme import themed
from advstudio.workers import JobManager, JobWorker

COLUMNS = ("Started", "Kind", "Title", "Status", "Duration", "Device", "Summary")
STATUS_COLOURS = {
    "failed": "#b2182b",
    "interrupted": "#b35806",
    "cancelled": "#777777",
    "running": "#2166ac",
}
PALETTE = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


class RunsTab(QWidget):
    rerun_started = Signal(object)  # JobWorker

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models=None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        self.state, self.jobs = state, jobs
        self.settings = settings or QSettings()
        self.runs = []
        self.kind = QComboBox()
        self.status = QComboBox()
        for combo, values in (
            (self.kind, tuple(JOB_KINDS)),
            (self.status, ("finished", "running", "failed", "cancelled", "interrupted")),
        ):
            combo.addItem("all", None)
            for v in values:
                combo.addItem(v, v)
            combo.currentIndexChanged.connect(self.refresh)
        self.search = QLineEdit(placeholderText="search title, config, error…")
        self.search.returnPressed.connect(self.refresh)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        filters = QHBoxLayout()
        for label, w in (("Kind", self.kind), ("Status", self.status)):
            filters.addWidget(QLabel(label))
            filters.addWidget(w)
        filters.addWidget(self.search, 1)
        filters.addWidget(refresh)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self.show_selected)

        self.metric_choice = QComboBox()
        self.metric_choice.setToolTip(
            "The metric to plot for the selected runs (select several runs to compare them)"
        )
        self.metric_choice.currentIndexChanged.connect(self._plot)
        self.rerun_button = QPushButton("Rerun")
        self.rerun_button.setToolTip("Run it again from the start with the same config")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Continue a stopped or interrupted training from its last checkpoint (as a new run)"
        )
        self.config_button = QPushButton("Export config…")
        self.config_button.setToolTip(
            "Save the run's config as a TOML or JSON file for "
            "advstudio-run (headless, or under torchrun)"
        )
        self.delete_button = QPushButton("Delete…")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Save the run's folder (config, metrics, log, artifacts) as a zip"
        )
        self.tensorboard_button = QPushButton("TensorBoard…")
        self.tensorboard_button.setToolTip(
            "Write the selected runs' metrics and configs as "
            "TensorBoard event files (tensorboard --logdir …)"
        )
        self.tensorboard_button.clicked.connect(self.export_tensorboard_selected)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip(
            "Show the run's files (config, metrics, log, artifacts) in the file manager"
        )
        self.folder_button.clicked.connect(self.open_folder_selected)
        self.rerun_button.clicked.connect(self.rerun_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.config_button.clicked.connect(self.export_config_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button.clicked.connect(self.export_selected)
        actions = QHBoxLayout()
        actions.addWidget(QLabel("Plot"))
        actions.addWidget(self.metric_choice, 1)
        for b in (
            self.rerun_button,
            self.resume_button,
            self.config_button,
            self.folder_button,
            self.delete_button,
            self.export_button,
            self.tensorboard_button,
        ):
            actions.addWidget(b)
        self.message = QLabel(wordWrap=True)  # what the last export wrote, and where
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.config_table = ConfigTable()
        self.details = QLabel(wordWrap=True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plot = pg.PlotWidget(background="w")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.legend = legend_below(self.plot)
        themed(self.plot)  # dark plots under the dark theme

        self.thumbnail = QLabel()  # the run's image artifact, if it has one
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight)
        self.thumbnail.hide()
        about_box = QWidget()  # details, image and config beside the plot
        about = QVBoxLayout(about_box)
        about.setContentsMargins(0, 0, 0, 0)
        heading = QHBoxLayout()
        heading.addWidget(self.details, 1)
        heading.addWidget(self.thumbnail)
        about.addLayout(heading)
        about.addWidget(self.config_table, 1)
        self.detail_splitter = QSplitter(Qt.Orientation.Horizontal, childrenCollapsible=False)
        self.detail_splitter.addWidget(about_box)
        self.detail_splitter.addWidget(self.plot)
        self.detail_splitter.setStretchFactor(1, 2)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addLayout(actions)
        bl.addWidget(self.message)
        bl.addWidget(self.detail_splitter, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical, childrenCollapsible=False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        self._metrics_cache: dict[str, list[dict]] = {}
        jobs.job_ended.connect(lambda _w: self.refresh())
        self._update_buttons()
        self.refresh()

    @property
    def store(self):
        return self.jobs.store

    def refresh(self) -> None:
        if self.store is None:
            self.details.setText(
                "The run history is not available (the store could not be opened)."
            )
            return
        selected = set(self.selected_ids())
        self.runs = self.store.list_runs(
            kind=self.kind.currentData(),
            status=self.status.currentData(),
            text=self.search.text().strip() or None,
        )
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            duration = run.duration
            cells = (
                run.created.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                run.kind,
                run.title,
                str(run.status),
                f"{duration:.1f} s" if duration is not None else "",
                run.device,
                run.error or headline(run.kind, run.summary),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, run.id)
                if col == 3 and str(run.status) in STATUS_COLOURS:
                    item.setForeground(Qt.GlobalColor.white)
                    item.setBackground(_qcolor(STATUS_COLOURS[str(run.status)]))
                self.table.setItem(row, col, item)
            if run.id in selected:
                self.table.selectRow(row)
        self.table.blockSignals(False)
        self.show_selected()

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.runs[r].id for r in rows if r < len(self.runs)]

    def select(self, run_ids: list[str]) -> None:
        """Select these runs in the table (as a user would with Ctrl+click)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row, run in enumerate(self.runs):
            if run.id in run_ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        n = len(ids)
        self.rerun_button.setEnabled(n == 1)
        self.config_button.setEnabled(n == 1)
        self.export_button.setEnabled(n == 1)
        self.folder_button.setEnabled(n == 1)
        self.delete_button.setEnabled(n >= 1)
        self.tensorboard_button.setEnabled(n >= 1)
        self.resume_button.setEnabled(n == 1 and self.can_resume(ids[0]))

    def can_resume(self, run_id: str) -> bool:
        """A run that stopped before its end and left a checkpoint in its folder."""
        info = next((r for r in self.runs if r.id == run_id), None)
        return (
            info is not None
            and str(info.status) in ("cancelled", "interrupted", "failed")
            and self.store.resumable(run_id)
        )

    def show_selected(self) -> None:
        self._update_buttons()
        ids = self.selected_ids()
        keys: list[str] = []
        for run_id in ids:
            rows = self._metrics(run_id)
            for row in rows:
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)) and k not in keys:
                        keys.append(k)
        current = self.metric_choice.currentText()
        self.metric_choice.blockSignals(True)
        self.metric_choice.clear()
        self.metric_choice.addItems(keys)
        if current in keys:
            self.metric_choice.setCurrentText(current)
        self.metric_choice.blockSignals(False)
        if len(ids) == 1:
            info = self.store.get(ids[0])
            self.config_table.show_config(self.store.rerun_config(ids[0])[1])
            self.details.setText(
                f"<b>{info.title}</b> ({info.id}, {info.status})"
                + (f"<br><span style='color:#b2182b'>{info.error}</span>" if info.error else "")
            )
        elif len(ids) == 2:
            (_, a), (_, b) = (self.store.rerun_config(i) for i in ids)
            n = self.config_table.show_diff(tuple(i[-6:] for i in ids), a, b)
            self.details.setText(
                f"2 runs selected: {n} setting{'s' if n != 1 else ''} differ"
                if n
                else "2 runs selected: the same config"
            )
        else:
            self.config_table.clear_rows()
            self.details.setText(f"{len(ids)} runs selected" if ids else "")
        self._show_thumbnail(ids[0] if len(ids) == 1 else None)
        self._plot()

    THUMBNAIL_PX = 160

    def _show_thumbnail(self, run_id: str | None) -> None:
        pixmap = QPixmap()
        if run_id is not None:
            pngs = [a for a in self.store.artifacts(run_id) if a.lower().endswith(".png")]
            if pngs:
                name = "samples.png" if "samples.png" in pngs else pngs[0]
                path = self.store.run_path(run_id) / "artifacts" / name
                if pixmap.load(str(path)):
                    self.thumbnail.setToolTip(f"{name} (in the run's artifacts folder)")
        if pixmap.isNull():
            self.thumbnail.hide()
            return
        self.thumbnail.setPixmap(
            pixmap.scaled(
                self.THUMBNAIL_PX,
                self.THUMBNAIL_PX,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        )  # crisp pixels for small images
        self.thumbnail.show()

    def open_folder_selected(self) -> bool:
        ids = self.selected_ids()
        if len(ids) != 1:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.store.run_path(ids[0]))))

    def _metrics(self, run_id: str) -> list[dict]:
        info = next((r for r in self.runs if r.id == run_id), None)
        if run_id not in self._metrics_cache or (info and str(info.status) == "running"):
            self._metrics_cache[run_id] = self.store.read_metrics(run_id)
        return self._metrics_cache[run_id]

    def _plot(self) -> None:
        import pyqtgraph as pg

        self.plot.clear()
        self.legend.clear()
        key = self.metric_choice.currentText()
        if not key:
            return
        for i, run_id in enumerate(self.selected_ids()):
            rows = [r for r in self._metrics(run_id) if isinstance(r.get(key), (int, float))]
            x = [
                r.get("eps", r["step"])
                if key in ("accuracy", "success") and "eps" in r
                else r["step"]
                for r in rows
            ]
            colour = PALETTE[i % len(PALETTE)]
            info = next(r for r in self.runs if r.id == run_id)
            self.plot.plot(
                x,
                [r[key] for r in rows],
                pen=pg.mkPen(colour, width=2),
                symbol="o" if len(rows) < 60 else None,
                symbolSize=5,
                symbolBrush=colour,
                name=f"{info.title} ({run_id[-6:]})",
            )
        self.plot.setLabel("left", key)

    def plotted_curves(self) -> int:
        return len(self.plot.listDataItems())

    # -- actions ------------------------------------------------------------------------------
    def rerun_selected(self) -> JobWorker | None:
        ids = self.selected_ids()
        return self._start_again(ids[0], resume=False) if len(ids) == 1 else None

    def resume_selected(self) -> JobWorker | None:
        ids = self.selected_ids()
        if len(ids) != 1 or not self.can_resume(ids[0]):
            return None
        return self._start_again(ids[0], resume=True)

    def _start_again(self, run_id: str, resume: bool) -> JobWorker | None:
        from advstudio.core.jobkinds import build_config
        from advstudio.core.runs import CHECKPOINT

        kind, values = self.store.rerun_config(run_id)
        try:
            config = build_config(kind, values)
            _, run = JOB_KINDS[kind].load()
        except Exception as exc:  # noqa: BLE001
            show_error(self, f"Cannot {'resume' if resume else 'rerun'} the run", exc)
            return None
        title = self.store.get(run_id).title
        resume_from = (self.store.run_path(run_id) / "artifacts" / CHECKPOINT) if resume else None
        verb = "Resume" if resume else "Rerun"
        worker = self.jobs.start(
            lambda: run(config),
            f"{verb} of {title}",
            record=(kind, config, run),
            resume_from=resume_from,
            connect=lambda w: w.errored.connect(
                lambda exc: show_error(self, f"The {verb.lower()} failed", exc)
            ),
        )
        self.rerun_started.emit(worker)
        return worker

    def export_config_selected(self) -> Path | None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return None
        kind, values = self.store.rerun_config(ids[0])
        return export_config_dialog(
            self, self.settings, kind, values, f"{ids[0]} ({self.store.get(ids[0]).title})"
        )

    def confirm_delete(self, n: int) -> bool:
        """Patchable in tests."""
        return (
            QMessageBox.question(
                self,
                "Delete runs",
                f"Delete {n} run{'s' if n > 1 else ''} and their files? This cannot be undone.",
            )
            == QMessageBox.StandardButton.Yes
        )

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if not ids or not self.confirm_delete(len(ids)):
            return
        for run_id in ids:
            try:
                self.store.delete(run_id)
            except Exception as exc:  # noqa: BLE001 - e.g. the run is still running
                show_error(self, "Cannot delete the run", exc)
            self._metrics_cache.pop(run_id, None)
        self.refresh()

    def export_selected(self) -> Path | None:
        ids = self.selected_ids()
        if len(ids) != 1:
            return None
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export run", str(start / f"{ids[0]}.zip"), "Zip (*.zip)"
        )
        if not path:
            return None
        self.settings.setValue("last_export_folder", str(Path(path).parent))
        written = self.store.export(ids[0], Path(path), as_zip=True)
        self.message.setText(f"Exported {ids[0]} to {written}")
        return written

    def export_tensorboard_selected(self) -> list[Path]:
        """The selected runs as TensorBoard event files, one sub-folder each, in a folder the
        user picks; the message says where and how to view them."""
        from advstudio.core.runs.tensorboard import export_runs

        ids = self.selected_ids()
        start = str(self.settings.value("last_export_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Export for TensorBoard", start)
        if not ids or not folder:
            return []
        self.settings.setValue("last_export_folder", folder)
        try:
            written = export_runs(self.store, ids, folder)
        except OSError as exc:
            show_error(self, "Cannot export for TensorBoard", exc)
            return []
        self.message.setText(
            f"Wrote {len(written)} event file{'s' if len(written) > 1 else ''} "
            f'to {folder}; view them with: tensorboard --logdir "{folder}"'
        )
        return written


def _qcolor(hex_colour: str):
    from PySide6.QtGui import QColor

    return QColor(hex_colour)


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(RunsTab)
