"""The window's system libraries: the start-up check names the missing ones and the command that
installs them, and README.md lists every one."""

from __future__ import annotations

from pathlib import Path

from advstudio import app


def test_missing_xcb_libraries_are_named_with_the_apt_command(monkeypatch, capsys):
    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def load(name):
        if name in ("libxcb-cursor.so.0", "libxcb-icccm.so.4"):
            raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr("ctypes.CDLL", load)
    assert app.main([]) == 1  # before any QApplication: Qt would abort without a word
    err = capsys.readouterr().err
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4" in err
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4\n" in err


def test_no_check_off_x11(monkeypatch):
    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.missing_xcb_libraries(load=lambda name: 1 / 0) == []
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert app.missing_xcb_libraries(load=lambda name: 1 / 0) == []


def test_readme_lists_every_package():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for package in app.XCB_LIBRARIES.values():
        assert f" {package} " in readme.replace("\\\n", " ").replace("\n", " "), package
