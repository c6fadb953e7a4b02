"""The installer: build the Linux bundle and .deb with packaging/build.py, then run the program's
own ``--self-test`` from the bundle and from the .deb unpacked into a scratch root.

Slow (the build copies PyTorch, ~3.7 GB with its CUDA libraries: several minutes), so it is not in
the default suite:

    uv run --group packaging pytest -m packaging

ADVSTUDIO_PACKAGING_KEEP=1 keeps the outputs (their folder is printed) instead of deleting them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux installer"),
]

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 45 * 60
SELF_TEST_TIMEOUT_S = 600


def _du(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.fixture(scope="module")
def built():
    pytest.importorskip("PyInstaller", reason="run with `uv run --group packaging`")
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed for the .deb")
    out = Path(tempfile.mkdtemp(prefix="advstudio-packaging-"))
    t0 = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "packaging" / "build.py"),
            "--dist",
            str(out / "dist"),
            "--work",
            str(out / "work"),
            "--skip-tar",
            "--no-self-test",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    elapsed = time.perf_counter() - t0
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    bundle = out / "dist" / "advstudio"
    debs = sorted((out / "dist").glob("advstudio_*.deb"))
    print(
        f"build: {elapsed:.0f} s; bundle {_du(bundle) / 2**30:.2f} GiB; "
        f".deb {debs[0].stat().st_size / 2**30:.2f} GiB"
    )
    yield {"bundle": bundle, "deb": debs[0], "out": out}
    if os.environ.get("ADVSTUDIO_PACKAGING_KEEP"):
        print(f"kept: {out}")
    else:
        shutil.rmtree(out, ignore_errors=True)


def test_app_works_without_the_modules_the_bundle_leaves_out(tmp_path):
    """Fast (no build): every advstudio module imports, and an optimiser step runs (torch.optim
    imports torch._dynamo, which tries triton), with the modules that packaging/trim.py leaves
    out of the bundle blocked, in the development environment."""
    script = f"""
import sys
sys.path.insert(0, {str(ROOT / "packaging")!r})
import trim
for name in trim.EXCLUDED_MODULES:
    sys.modules[name] = None  # import raises ImportError, as in the bundle
import importlib, pkgutil
import advstudio, torch
for info in pkgutil.walk_packages(advstudio.__path__, "advstudio."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
model = torch.nn.Linear(4, 2)
opt = torch.optim.Adam(model.parameters())
model(torch.ones(1, 4)).sum().backward()
opt.step()
import torch.utils._triton as t
assert not t.has_triton_package()
print("ok")
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]


def _self_test(exe: Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ADVSTUDIO_RESOURCES", "PYTHONPATH")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["HOME"] = str(cwd)  # settings and the run store go to a scratch home
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("XDG_DATA_HOME", None)
    result = subprocess.run(
        [str(exe), "--self-test"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SELF_TEST_TIMEOUT_S,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "self-test OK: digits-cnn predicts 7" in result.stdout, result.stdout
    return result.stdout


def test_bundle_runs_the_self_test(built, tmp_path):
    exe = built["bundle"] / "advstudio"
    assert os.access(exe, os.X_OK)
    # the repository is not on the path: the data and code come from the bundle
    output = _self_test(exe, tmp_path)
    assert "torch 2.13.0" in output


def test_bundle_accepts_the_same_arguments(built):
    result = subprocess.run(
        [str(built["bundle"] / "advstudio"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "0.1.0", result


def test_bundle_carries_the_data_and_leaves_out_what_the_app_never_loads(built):
    internal = built["bundle"] / "_internal"
    resources = internal / "advstudio" / "_resources"
    for name in (
        "digits/digits.npz",
        "models/digits-cnn.pt",
        "models/digits-mlp.pt",
        "samples/digit_7.png",
        "icons/advstudio.png",
        "LICENSES.md",
    ):
        assert (resources / name).is_file(), name
    assert not (internal / "triton").exists()
    assert not (internal / "torch" / "include").exists()
    assert [p.name for p in (internal / "torch" / "bin").iterdir()] == ["torch_shm_manager"]
    assert not [p for p in internal.rglob("*") if p.is_symlink() and not p.exists()]
    assert not (internal / "torch" / "test").exists()
    assert not list(internal.rglob("*.a"))
    assert not list(internal.rglob("*.pyi"))
    qt_libs = {p.name for p in (internal / "PySide6" / "Qt" / "lib").iterdir()}
    for unused in (
        "libQt6Quick.so.6",
        "libQt6Qml.so.6",
        "libQt6WebEngineCore.so.6",
        "libQt6Multimedia.so.6",
        "libQt63DCore.so.6",
        "libQt6Network.so.6",
    ):
        assert unused not in qt_libs
    plugins = {
        p.relative_to(internal / "PySide6" / "Qt" / "plugins").as_posix()
        for p in (internal / "PySide6" / "Qt" / "plugins").rglob("*.so")
    }
    assert {
        "platforms/libqxcb.so",
        "platforms/libqoffscreen.so",
        "imageformats/libqjpeg.so",
    } <= plugins
    assert not any(
        p.startswith(("qmltooling/", "sqldrivers/", "tls/", "designer/")) for p in plugins
    )


def test_deb_metadata_and_layout(built):
    deb = built["deb"]
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Package: advstudio" in fields and "Version: 0.1.0" in fields
    assert "libc6 (>= 2.3" in fields, fields  # the glibc the bundle was built against
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    assert "./usr/bin/advstudio -> /opt/advstudio/advstudio" in listing
    assert "./usr/share/applications/advstudio.desktop" in listing
    assert "./usr/share/icons/hicolor/256x256/apps/advstudio.png" in listing
    assert "./opt/advstudio/advstudio\n" in listing
    for line in listing.splitlines():
        assert " root/root " in line, line  # --root-owner-group


def test_deb_unpacked_into_a_scratch_root_runs_the_self_test(built, tmp_path):
    scratch = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(built["deb"]), str(scratch)], check=True, timeout=1800)
    desktop = scratch / "usr" / "share" / "applications" / "advstudio.desktop"
    text = desktop.read_text(encoding="utf-8")
    assert "Exec=advstudio" in text and "Icon=advstudio" in text
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(desktop)], check=True)
    link = scratch / "usr" / "bin" / "advstudio"
    assert link.is_symlink() and os.readlink(link) == "/opt/advstudio/advstudio"
    # the link is absolute (it points into the real /opt): rebuild it inside the scratch root to
    # check that the program starts through a symlink, as /usr/bin/advstudio does once installed
    link.unlink()
    link.symlink_to(Path("..", "..", "opt", "advstudio", "advstudio"))
    try:
        _self_test(link, tmp_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # 3.5 GB: pytest keeps old tmp_paths
