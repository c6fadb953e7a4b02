"""Build advstudio's installers for the current OS.

    uv run --group packaging python packaging/build.py [--variant registry|cpu] [--skip-deb]
        [--skip-tar] [--skip-installer] [--no-self-test] [--dist DIR] [--work DIR]

Steps:

1. a one-folder, windowed PyInstaller bundle (``packaging/advstudio.spec``) in
   ``DIST/advstudio/`` (macOS: ``DIST/advstudio.app``);
2. its self-test: ``advstudio --self-test`` offscreen, the built-in model predicts a sample;
3. the wrappers the OS can build:
   * Linux: ``advstudio_VERSION_ARCH.deb`` (``dpkg-deb``; installs under ``/opt/advstudio``
     with a ``/usr/bin/advstudio`` symlink, a menu entry and an icon) and
     ``advstudio-VERSION-linux-ARCH.tar.gz`` (the bundle; run ``advstudio/advstudio``);
   * Windows: ``advstudio-VERSION-setup.exe`` with Inno Setup's ``iscc`` (PATH or
     ``%ProgramFiles(x86)%``) from ``packaging/windows/advstudio.iss``;
   * macOS: ``advstudio-VERSION-macos.dmg`` (``hdiutil``) holding ``advstudio.app`` and a
     link to ``/Applications`` (``packaging/macos/make_dmg.sh``).

Variants (what PyTorch the bundle carries):

* ``registry`` (default): the project's own ``.venv``, i.e. the locked torch / torchvision from
  PyPI. On Linux that is PyTorch's CUDA build: the NVIDIA libraries that ``libtorch_cuda.so``
  links are bundled (``import torch`` fails without them), which makes the bundle ~3.7 GB.
* ``cpu``: a separate venv (``WORK/venv-cpu``) with torch and torchvision from PyTorch's CPU
  wheel index (``--torch-index``, default https://download.pytorch.org/whl/cpu) and every other
  package at its locked version from PyPI; no CUDA library is bundled (target: under 600 MB).
  Needs that index to be reachable.

Outputs default to ``dist/`` and ``build/`` at the repository root (both git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import trim  # noqa: E402

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SELF_TEST_TIMEOUT_S = 600
# packages that come from the CPU index (torch, torchvision) or that only the CUDA build needs
CUDA_ONLY = ("torch==", "torchvision==", "triton==", "nvidia-", "cuda-")


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def version() -> str:
    namespace: dict = {}
    exec((ROOT / "advstudio" / "__init__.py").read_text(encoding="utf-8"), namespace)
    return namespace["__version__"]


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (files only, links not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def human(n: float) -> str:
    """Binary units, as ``du -h`` prints them (1 GB here = 1024^3 bytes)."""
    if n < 1024**2:
        return f"{n / 1024:.0f} KB"
    if n < 1024**3:
        return f"{n / 1024**2:.0f} MB"
    return f"{n / 1024**3:.2f} GB"


def deb_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )


# --- step 1: the Python that builds -------------------------------------------------------------


def registry_python() -> str:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        sys.exit(
            "PyInstaller is not installed: run `uv run --group packaging python packaging/build.py`"
        )
    return sys.executable


def cpu_python(work: Path, index: str) -> str:
    """A venv with torch / torchvision from the CPU wheel index and everything else locked."""
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("the cpu variant needs uv on PATH (pip install uv)")
    venv = work / "venv-cpu"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        run([uv, "venv", "--python", "3.11", venv])
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--format",
            "requirements-txt",
            "--no-hashes",
            "--no-emit-project",
            "--no-dev",
            "--group",
            "packaging",
            "--no-header",
            "--no-annotate",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    pins = {
        line.split("==")[0]: line.split(";")[0].strip()
        for line in exported
        if line.startswith(("torch==", "torchvision=="))
    }
    keep = [line for line in exported if line.strip() and not line.startswith(CUDA_ONLY)]
    requirements = work / "requirements-cpu.txt"
    requirements.write_text("\n".join(keep) + "\n", encoding="utf-8")
    run([uv, "pip", "install", "--python", python, "-r", requirements])
    try:
        run(
            [
                uv,
                "pip",
                "install",
                "--python",
                python,
                "--no-deps",
                "--index-url",
                index,
                pins["torch"],
                pins["torchvision"],
            ]
        )
    except subprocess.CalledProcessError:
        sys.exit(
            f"could not install {pins['torch']} / {pins['torchvision']} from {index}: is it "
            "reachable from here? (--torch-index takes a mirror)"
        )
    check = subprocess.run(
        [python, "-c", "import torch, torchvision; print(torch.__version__, torch.version.cuda)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    log(f"cpu venv: torch {check[0]}, CUDA {check[1]}")
    if check[1] != "None":
        sys.exit(f"the cpu venv got a CUDA build of torch ({check[0]}): check --torch-index")
    return str(python)


# --- step 2: PyInstaller ------------------------------------------------------------------------


def pyinstaller(python: str, variant: str, dist: Path, work: Path) -> Path:
    env = dict(os.environ, ADVSTUDIO_VARIANT=variant, PYTHONNOUSERSITE="1")
    run(
        [
            python,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            dist,
            "--workpath",
            work / "pyinstaller",
            HERE / "advstudio.spec",
        ],
        env=env,
        cwd=ROOT,
    )
    return dist / ("advstudio.app" if sys.platform == "darwin" else "advstudio")


def executable(bundle: Path) -> Path:
    if bundle.suffix == ".app":
        return bundle / "Contents" / "MacOS" / "advstudio"
    return bundle / ("advstudio.exe" if os.name == "nt" else "advstudio")


def missing_libraries(bundle: Path) -> list[str]:
    """Linux: DT_NEEDED names that neither the bundle nor this system's loader cache provide.

    Expected here: ``libcuda.so.1`` (the NVIDIA driver's, on GPU machines only) and
    ``libwayland-*`` (Wayland desktops have them; elsewhere Qt uses xcb)."""
    if not sys.platform.startswith("linux") or shutil.which("objdump") is None:
        return []
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    system = {line.split()[0] for line in cache.splitlines()[1:] if line.strip()}
    files = [f for f in bundle.rglob("*.so*") if f.is_file() and not f.is_symlink()]
    present = {f.name for f in bundle.rglob("*.so*") if f.exists()}  # not dangling links
    missing: dict[str, list[str]] = {}
    for f in files + [executable(bundle)]:
        for name in trim._needed(str(f)):
            if name not in present and name not in system:
                missing.setdefault(name, []).append(f.name)
    return [
        f"{name} (needed by {', '.join(sorted(set(users))[:3])}"
        f"{', ...' if len(set(users)) > 3 else ''})"
        for name, users in sorted(missing.items())
    ]


def glibc_floor(bundle: Path) -> str | None:
    """Linux: the newest ``GLIBC_x.y`` symbol version any bundled binary needs, e.g. ``2.36``.

    A PyInstaller bundle runs only where glibc is at least that (the bundled libstdc++ and
    libpython come from the build machine; PySide6 6.11's wheels alone need 2.34): the .deb says
    so in ``Depends: libc6 (>= ...)``, so that an older system refuses it instead of crashing."""
    import re

    if shutil.which("objdump") is None:
        return None
    newest = (0, 0)
    for f in bundle.rglob("*"):
        if f.is_symlink() or not f.is_file() or not (".so" in f.name or f == executable(bundle)):
            continue
        symbols = subprocess.run(["objdump", "-T", str(f)], capture_output=True, text=True).stdout
        for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", symbols):
            newest = max(newest, (int(major), int(minor)))
    return f"{newest[0]}.{newest[1]}" if newest > (0, 0) else None


def self_test(exe: Path) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("ADVSTUDIO_RESOURCES", None)
    t0 = time.perf_counter()
    result = subprocess.run(
        [exe, "--self-test"], env=env, capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT_S
    )
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        sys.exit(
            f"self-test of {exe} failed (exit {result.returncode}):\n{result.stdout}\n"
            f"{result.stderr}"
        )
    log(
        f"self-test passed in {elapsed:.1f} s: "
        + next((line for line in result.stdout.splitlines() if "self-test" in line), "?")
    )
    return elapsed


# --- step 3: wrappers ---------------------------------------------------------------------------


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """Hard links where the filesystem allows (no second copy of gigabytes), else copies."""
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


def make_tar(bundle: Path, out: Path) -> Path:
    """``advstudio/`` inside, gzip. Uses the system tar (and pigz when present: faster)."""
    out.unlink(missing_ok=True)
    tar = shutil.which("tar")
    if tar and sys.platform != "win32":
        compressor = "pigz" if shutil.which("pigz") else "gzip"
        run(
            [
                tar,
                "-C",
                bundle.parent,
                "--owner=0",
                "--group=0",
                "-I",
                compressor,
                "-cf",
                out,
                bundle.name,
            ]
        )
    else:
        with tarfile.open(out, "w:gz") as archive:
            archive.add(bundle, arcname=bundle.name)
    return out


def make_deb(
    bundle: Path, dist: Path, work: Path, ver: str, variant: str, compression: str
) -> Path:
    arch = deb_arch()
    root = work / "deb" / f"advstudio_{ver}_{arch}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "DEBIAN").mkdir(parents=True)
    link_or_copy_tree(bundle, root / "opt" / "advstudio")
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink("/opt/advstudio/advstudio", root / "usr" / "bin" / "advstudio")
    applications = root / "usr" / "share" / "applications"
    applications.mkdir(parents=True)
    shutil.copy2(HERE / "linux" / "advstudio.desktop", applications / "advstudio.desktop")
    icons = ROOT / "resources" / "icons"
    for size, name in ((256, "advstudio-256.png"), (512, "advstudio.png")):
        folder = root / "usr" / "share" / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True)
        shutil.copy2(icons / name, folder / "advstudio.png")
    doc = root / "usr" / "share" / "doc" / "advstudio"
    doc.mkdir(parents=True)
    shutil.copy2(HERE / "linux" / "copyright", doc / "copyright")
    glibc = glibc_floor(bundle) or "2.28"
    log(f".deb: needs glibc >= {glibc} (the newest symbol version the bundle uses)")
    control = (
        (HERE / "linux" / "control.in")
        .read_text(encoding="utf-8")
        .format(
            version=ver,
            arch=arch,
            installed_size=du(root) // 1024,
            glibc=glibc,
            maintainer=os.environ.get(
                "ADVSTUDIO_MAINTAINER", "advstudio maintainers <maintainers@advstudio.invalid>"
            ),
            torch_build="CPU build" if variant == "cpu" else "CUDA build, runs on the CPU too",
        )
    )
    (root / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        folder.chmod(0o755)
    out = dist / f"advstudio_{ver}_{arch}{'-cpu' if variant == 'cpu' else ''}.deb"
    out.unlink(missing_ok=True)
    run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", root, out])
    shutil.rmtree(root, ignore_errors=True)
    return out


def find_iscc() -> str | None:
    found = shutil.which("iscc") or shutil.which("ISCC")
    if found:
        return found
    for base in (os.environ.get("ProgramFiles(x86)"), os.environ.get("ProgramFiles")):
        if base and (Path(base) / "Inno Setup 6" / "ISCC.exe").is_file():
            return str(Path(base) / "Inno Setup 6" / "ISCC.exe")
    return None


def make_windows_setup(bundle: Path, dist: Path, ver: str) -> Path | None:
    iscc = find_iscc()
    if iscc is None:
        log(
            "Inno Setup (iscc) not found: skipping the Windows installer "
            "(https://jrsoftware.org/isinfo.php, or `choco install innosetup`)"
        )
        return None
    run(
        [
            iscc,
            f"/DAppVersion={ver}",
            f"/DSourceDir={bundle}",
            f"/DOutputDir={dist}",
            f"/DIconFile={ROOT / 'resources' / 'icons' / 'advstudio.ico'}",
            HERE / "windows" / "advstudio.iss",
        ]
    )
    return dist / f"advstudio-{ver}-setup.exe"


def make_dmg(app: Path, dist: Path, ver: str) -> Path:
    out = dist / f"advstudio-{ver}-macos.dmg"
    run(["bash", HERE / "macos" / "make_dmg.sh", app, out])
    return out


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variant",
        choices=["registry", "cpu"],
        default="registry",
        help="registry: the locked torch from PyPI (the project's .venv); "
        "cpu: torch from PyTorch's CPU index in a separate venv",
    )
    parser.add_argument(
        "--torch-index",
        default=CPU_INDEX,
        help="where the cpu variant takes torch / torchvision (default: %(default)s)",
    )
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="outputs (default: dist/)")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build", help="intermediate files (default: build/)"
    )
    parser.add_argument("--skip-deb", action="store_true", help="Linux: no .deb")
    parser.add_argument("--skip-tar", action="store_true", help="Linux: no .tar.gz")
    parser.add_argument(
        "--skip-installer",
        action="store_true",
        help="only the bundle (no .deb / .tar.gz / setup.exe / .dmg)",
    )
    parser.add_argument(
        "--no-self-test", action="store_true", help="do not run the bundle's --self-test"
    )
    parser.add_argument(
        "--deb-compression",
        default="zstd",
        choices=["zstd", "gzip", "xz", "none"],
        help="dpkg-deb -Z (default zstd: ~20x faster than gzip here on the 3.7 GB "
        "bundle, and smaller; read by dpkg 1.21.18+ (Debian 12+) and by "
        "Ubuntu 20.04+; gzip for older dpkg)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dist, work = args.dist.resolve(), args.work.resolve()
    dist.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    ver = version()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    python = registry_python() if args.variant == "registry" else cpu_python(work, args.torch_index)
    timings["environment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bundle = pyinstaller(python, args.variant, dist, work)
    timings["PyInstaller"] = time.perf_counter() - t0
    exe = executable(bundle)
    if not exe.is_file():
        sys.exit(f"PyInstaller did not produce {exe}")
    missing = missing_libraries(bundle)
    if missing:
        log(
            "libraries neither bundled nor on this system (they must be on the user's):\n  "
            + "\n  ".join(missing)
        )

    if not args.no_self_test:
        timings["self-test"] = self_test(exe)

    outputs = [bundle]
    if not args.skip_installer:
        t0 = time.perf_counter()
        if sys.platform.startswith("linux"):
            suffix = "-cpu" if args.variant == "cpu" else ""
            if not args.skip_tar:
                outputs.append(
                    make_tar(
                        bundle, dist / f"advstudio-{ver}-linux-{platform.machine()}{suffix}.tar.gz"
                    )
                )
            if not args.skip_deb:
                if shutil.which("dpkg-deb") is None:
                    log("dpkg-deb not found: skipping the .deb (apt-get install dpkg)")
                else:
                    outputs.append(
                        make_deb(bundle, dist, work, ver, args.variant, args.deb_compression)
                    )
        elif sys.platform == "win32":
            setup = make_windows_setup(bundle, dist, ver)
            if setup:
                outputs.append(setup)
        elif sys.platform == "darwin":
            outputs.append(make_dmg(bundle, dist, ver))
        timings["installers"] = time.perf_counter() - t0

    log("done: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    for path in outputs:
        log(f"  {path}: {human(du(path))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
