"""Menu actions driven as a user does: through the QAction (its shortcut or a click)."""

from __future__ import annotations

import torch


def _plain_accuracy() -> float:
    """The built-in CNN's accuracy on the 1,000 test digits, computed without the app."""
    from advstudio.core.data import load_digits
    from advstudio.core.models.registry import load_builtin

    model = load_builtin("digits-cnn")
    x, y = load_digits("test")
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_jobs_evaluate_action_evaluates_the_current_model(qtbot, window):
    """Ctrl+E: triggered(checked) must not reach the job as its batch size (it did: 'batch_size
    must be at least 1, not False')."""
    qtbot.waitUntil(lambda: window.evaluate_action.isEnabled(), timeout=60_000)
    errors = []
    window.jobs.job_started.connect(lambda w: w.errored.connect(errors.append))
    with qtbot.waitSignal(
        window.jobs.job_ended,
        timeout=120_000,
        check_params_cb=lambda w: w.title.startswith("Evaluating"),
    ):
        window.evaluate_action.trigger()
    assert errors == []
    assert window.status_message.text() == (
        f"digits-cnn: {_plain_accuracy() * 100:.1f} % correct on 1,000 test digits"
    )


def _action(window, text: str):
    """The window's menu action whose text (without '&') is ``text``."""
    from PySide6.QtGui import QAction

    found = [a for a in window.findChildren(QAction) if a.text().replace("&", "") == text]
    assert len(found) == 1, text
    return found[0]


def test_help_guide_buttons_open_their_tabs_and_shortcuts_list_every_one(
    qtbot, window, monkeypatch
):
    from PySide6.QtCore import Qt

    from advstudio.ui.guide import SECTIONS

    _action(window, "Guide").trigger()
    assert window.guide.isVisible()
    for title, _text, tab in SECTIONS:
        window.tabs.setCurrentIndex(0)
        qtbot.mouseClick(window.guide.buttons[title], Qt.MouseButton.LeftButton)
        assert window.tabs.tabText(window.tabs.currentIndex()) == tab, title
    window.guide.close()

    _action(window, "Keyboard shortcuts").trigger()
    table = window.shortcuts_dialog.table
    rows = {(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())}
    assert ("Ctrl+E", "Evaluate model on the test digits") in rows
    assert ("Ctrl+Return", "Attack tab: run the attack") in rows
    for action in window.findChildren(type(_action(window, "Guide"))):
        for sequence in action.shortcuts():  # every action's shortcut is listed
            assert sequence.toString() in {keys for keys, _ in rows}, action.text()
    window.shortcuts_dialog.close()

    about = []
    monkeypatch.setattr(
        "advstudio.ui.main_window.QMessageBox.about",
        lambda parent, title, text: about.append(title),
    )
    _action(window, "About advstudio").trigger()
    assert about == ["About advstudio"]


def test_open_actions_fill_recent_files_which_reopen_and_prune(
    qtbot, window, digit_png, tmp_path, monkeypatch
):
    from advstudio.core.models.architectures import DigitsMLP

    model_file = tmp_path / "mine.pt"
    torch.save(DigitsMLP().state_dict(), model_file)
    chosen = [str(digit_png)]
    monkeypatch.setattr(
        "advstudio.ui.image.tab.QFileDialog.getOpenFileName", lambda *_a, **_k: (chosen[0], "")
    )
    with qtbot.waitSignal(window.state.image_changed, timeout=10_000):
        _action(window, "Open image…").trigger()
    chosen[0] = str(model_file)
    _action(window, "Open model file…").trigger()
    qtbot.waitUntil(lambda: window.state.model_key.endswith("mine.pt"), timeout=10_000)
    qtbot.waitUntil(lambda: window.jobs.active == [], timeout=30_000)

    window.recent_menu.aboutToShow.emit()
    entries = [a for a in window.recent_menu.actions() if "(" in a.text()]
    assert [a.text().split()[0] for a in entries] == ["mine.pt", "seven.png"]  # newest first
    window.tabs.setCurrentIndex(1)
    with qtbot.waitSignal(window.state.image_changed, timeout=10_000):
        entries[1].trigger()
    assert window.tabs.currentWidget() is window.image_tab
    assert window.state.image.path == digit_png

    model_file.unlink()  # gone between sessions: pruned from the menu
    window.recent_menu.aboutToShow.emit()
    assert [a.text().split()[0] for a in window.recent_menu.actions() if "(" in a.text()] == [
        "seven.png"
    ]
    _action(window, "Clear the list").trigger()
    assert window.recent.entries() == []
    # the reopened image's prediction ends inside the test
    qtbot.waitUntil(lambda: window.jobs.active == [], timeout=30_000)


def test_recent_files_keep_the_ten_newest(settings, tmp_path):
    from advstudio.ui.recent_files import MAX_RECENT, RecentFiles

    recent = RecentFiles(settings)
    for i in range(MAX_RECENT + 2):
        (tmp_path / f"{i}.png").write_bytes(b"")
        recent.add("image", tmp_path / f"{i}.png")
    recent.add("image", tmp_path / "5.png")  # reopened: moves to the top, not duplicated
    names = [p.name for _, p in RecentFiles(settings).entries()]
    assert len(names) == MAX_RECENT and names[:2] == ["5.png", "11.png"]
    assert "0.png" not in names and "1.png" not in names


def test_preferences_apply_the_theme_and_remember_the_data_folder(
    qtbot, window, monkeypatch, tmp_path
):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication, QDialog

    from advstudio.ui.settings_dialog import SettingsDialog, apply_theme

    def accept_dark(dialog):
        dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
        dialog.folder_edit.setText(str(tmp_path))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(SettingsDialog, "exec", accept_dark)
    try:
        _action(window, "Preferences…").trigger()
        window_colour = QApplication.palette().color(QPalette.ColorRole.Window)
        assert window_colour.lightness() < 80
        assert window.settings.value("theme") == "dark"
        assert window.settings.value("data_folder") == str(tmp_path)
    finally:
        apply_theme("system")  # the palette is the application's: leave it as found
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 150


def test_quit_while_a_recorded_job_runs_asks_first(qtbot, window, job_ended):
    asked, answer = [], [False]
    window.ask = lambda title, question: asked.append(question) or answer[0]
    with job_ended(window.jobs, timeout=60_000, title="Evaluating") as ended:
        worker = window.evaluate_current_model(batch_size=1)
        qtbot.waitUntil(lambda: window.job_indicator.worker is worker, timeout=5000)
        _action(window, "Quit").trigger()
        assert window.isVisible() and not worker.cancel_requested
        assert "Evaluating digits-cnn still running" in asked[0]
        answer[0] = True
        _action(window, "Quit").trigger()
    assert not window.isVisible() and ended.worker.cancel_requested
    assert len(asked) == 2


def test_cancel_action_and_export_action(qtbot, window, job_ended):
    with job_ended(window.jobs, timeout=60_000, title="Evaluating") as ended:
        window.evaluate_current_model(batch_size=1)
        qtbot.waitUntil(lambda: window.job_indicator.isVisible(), timeout=5000)
        _action(window, "Cancel running job").trigger()
    assert ended.worker.cancel_requested
    window.tabs.setCurrentWidget(window.runs_host)
    _action(window, "Export job as config…").trigger()
    assert "no job to export" in window.status_message.text()
