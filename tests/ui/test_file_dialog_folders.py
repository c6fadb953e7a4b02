"""Issue #19, item 9: file dialogs start in the last folder (the patch export always started in
the home folder, the Certify exports in the process's working folder)."""

from __future__ import annotations

from pathlib import Path


def test_exports_start_in_the_last_export_folder_and_remember_the_next(
    qtbot, window, settings, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    qtbot.waitUntil(lambda: window.certify_tab is not None, timeout=10_000)
    last = tmp_path / "last"
    last.mkdir()
    asked: list[str] = []

    def answer(parent, caption, start, file_filter):
        asked.append(start)
        return "", ""  # cancelled: nothing is written

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(answer))
    for ask in (
        lambda: window.attack_tab.patch.export_dialog(),
        lambda: window.certify_tab._ask_export("csv"),
    ):
        settings.setValue("last_export_folder", str(last))
        ask()
        assert Path(asked[-1]).parent == last, asked[-1]
    # a folder chosen there is the next start
    chosen = tmp_path / "elsewhere"
    chosen.mkdir()
    written: list[str] = []
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(lambda parent, caption, start, f: (str(chosen / "patch.png"), f)),
    )
    monkeypatch.setattr(window.attack_tab.patch, "export_to", lambda p: written.append(p))
    window.attack_tab.patch.export_dialog()
    assert written and Path(str(settings.value("last_export_folder"))) == chosen
