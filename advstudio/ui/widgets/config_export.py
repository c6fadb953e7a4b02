"""Save a job's config as a file for ``advstudio-run`` (File ▸ Export job as config, and the Runs
tab's "Export config…")."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from advstudio.ui.widgets.error_box import show_error


def export_config_dialog(
    parent: QWidget, settings: QSettings, kind: str, values: dict, source: str
) -> Path | None:
    """Ask where, then write ``kind`` + ``values`` as a config file for ``advstudio-run``."""
    from advstudio.core.runs.configfile import write_config

    start = Path(str(settings.value("last_config_folder", str(Path.home()))))
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export as config", str(start / f"{kind}.toml"), "TOML (*.toml);;JSON (*.json)"
    )
    if not path:
        return None
    if Path(path).suffix.lower() not in (".toml", ".json"):
        path += ".toml"
    settings.setValue("last_config_folder", str(Path(path).parent))
    try:
        return write_config(
            path,
            kind,
            values,
            comment=f"advstudio {kind} job, exported from {source}.\n"
            f"Run it headless: advstudio-run {Path(path).name}",
        )
    except Exception as exc:  # noqa: BLE001
        show_error(parent, "Cannot export the config", exc)
        return None
