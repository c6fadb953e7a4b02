"""What the PyInstaller bundle leaves out, as glob patterns over paths inside the bundle.

Used by ``advstudio.spec`` (filters the collected data files and binaries) and by ``build.py``.
Each rule names something advstudio never loads:

* Qt: QML / Quick, WebEngine, 3D, Multimedia, Designer, Pdf and friends, Network, Test, SQL;
  plugins other than the platforms we run on (xcb, wayland, offscreen, minimal) and what they
  need, and image formats other than JPEG (PNG is built into QtGui). QtOpenGL and
  QtOpenGLWidgets stay (pyqtgraph imports them), and so does QtSvg (its plot menu exports SVG);
* system libraries that only a left-out file needed (GTK, cairo and pango for the GTK theme
  plugin, ...): ``prune_orphans``;
* PyTorch: C++ headers, CMake files, static libraries, ``torch/bin`` (protoc and C++ test
  programs; ``torch_shm_manager`` stays: ``import torch`` checks for it), the test libraries in
  ``torch/lib``, ``torch/test``, type stubs, caffe2 leftovers (``torchgen`` stays: ``import
  torch`` imports it; so do torch's ``.py`` sources: leaving out those of its compiler,
  distributed, ONNX and testing packages made ``import torch`` fail with "could not get source
  code", as TorchScript reads some at import); Triton (torch only tries to import it, for
  ``torch.compile``, which advstudio never calls: tests/test_packaging.py runs the app's modules
  with it blocked);
  the symbol tables of the large libraries are stripped (``strip_symbols``: 162 MB);
* CUDA (``registry`` variant): the CUDA headers and the libraries that nothing in torch links or
  loads (NVBLAS, cuFFTW, cuSOLVERMg, the profiler host / target libraries, checkpointing, the
  ``.alt`` NVRTC builds). The libraries that ``libtorch_cuda.so`` links (cuBLAS, cuDNN, cuFFT,
  cuSPARSE, cuSPARSELt, NCCL, NVSHMEM, ...) stay: without them ``import torch`` fails;
* CUDA (``cpu`` variant): every ``nvidia/`` file (a CPU wheel has none; a safety net).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

QT_LIB_DROP = [
    "Qml*",
    "Quick*",
    "WebEngine*",
    "WebChannel*",
    "WebSockets*",
    "WebView*",
    "3D*",
    "Multimedia*",
    "SpatialAudio*",
    "Designer*",
    "Help*",
    "Pdf*",
    "Lottie*",
    "Labs*",
    "ShaderTools*",
    "Charts*",
    "DataVisualization*",
    "Graphs*",
    "VirtualKeyboard*",
    "Sql*",
    "Test*",
    "UiTools*",
    "Xml*",
    "SvgWidgets*",
    "StateMachine*",
    "Scxml*",
    "Sensors*",
    "SerialPort*",
    "Positioning*",
    "Location*",
    "RemoteObjects*",
    "TextToSpeech*",
    "Bluetooth*",
    "Nfc*",
    "HttpServer*",
    "Protobuf*",
    "Grpc*",
    "Concurrent*",
    "EglFSDeviceIntegration*",
    "EglFsKmsSupport*",
    "EglFsKms*",
    "PrintSupport*",
    "Network*",
    "VectorImage*",
    "CanvasPainter*",
]

# Qt plugin folders and files that stay (everything else under plugins/ goes)
QT_PLUGINS_KEEP = [
    "platforms/libqxcb.so",
    "platforms/libqoffscreen.so",
    "platforms/libqwayland*.so",
    "platforms/libqminimal.so",
    "platforms/qwindows.dll",
    "platforms/qoffscreen.dll",
    "platforms/qminimal.dll",
    "platforms/libqcocoa.dylib",
    "platforms/libqoffscreen.dylib",
    "platforms/libqminimal.dylib",
    "imageformats/*qjpeg*",
    "xcbglintegrations/*",
    "wayland-decoration-client/*bradient*",
    "wayland-shell-integration/*",
    "platforminputcontexts/*compose*",
    "platforminputcontexts/*ibus*",
    "styles/*",
    "iconengines/*",
    "platformthemes/*xdgdesktopportal*",
]

COMMON_DROP = [
    # PySide6 development files
    "PySide6/include/*",
    "PySide6/typesystems/*",
    "PySide6/glue/*",
    "PySide6/*.pyi",
    "PySide6/Qt/qml/*",
    "PySide6/Qt/metatypes/*",
    "PySide6/Qt/translations/qtwebengine*",
    "PySide6/Qt/translations/assistant*",
    "PySide6/Qt/translations/designer*",
    "PySide6/Qt/translations/linguist*",
    "PySide6/Qt/translations/qt_help*",
    "PySide6/Qt/resources/*",
    "PySide6/Qt/libexec/*",
    "shiboken6/*.pyi",
    # PyTorch development files and tests
    "torch/include/*",
    "torch/share/*",
    "torch/test/*",
    "*.a",
    "*.lib",
    "torch/lib/libtorchbind_test.*",
    "torch/lib/libjitbackend_test.*",
    "torch/lib/libbackend_with_compiler.*",
    "torch/lib/libaoti_custom_ops.*",
    "*.pyi",
    "*.h",
    "*.hpp",
    "*.cuh",
    "*.cmake",
    "*.debug",
    "*.pdb",
    "caffe2/*",
    "torch/lib/libshm_windows/*",
    "functorch/*",
    "torch/_inductor/codegen/*.cpp",
    "torch/utils/benchmark/*",
    # Triton: torch.compile's GPU code generator (never used by advstudio)
    "triton/*",
    # numpy's tests and headers
    "numpy/*/tests/*",
    "numpy/_core/include/*",
    "numpy/f2py/*",
    # pyqtgraph's examples (imported on purpose by nobody)
    "pyqtgraph/examples/*",
    # CUDA headers
    "nvidia/*/include/*",
]

REGISTRY_CUDA_DROP = [
    "nvidia/cu*/lib/libnvblas*",
    "nvidia/cu*/lib/libcufftw*",
    "nvidia/cu*/lib/libcusolverMg*",
    "nvidia/cu*/lib/libnvperf*",
    "nvidia/cu*/lib/libpcsamplingutil*",
    "nvidia/cu*/lib/libcheckpoint*",
    "nvidia/cu*/lib/*.alt.so*",
    # the same libraries when PyInstaller's binary analysis puts them at the top level
    "libnvblas*",
    "libcufftw*",
    "libcusolverMg*",
    "libnvperf*",
    "libpcsamplingutil*",
    "libcheckpoint*",
    "*.alt.so*",
]

CPU_CUDA_DROP = [
    "nvidia/*",
    "libcu*.so*",
    "libnv*.so*",
    "libnccl*",
    "libcudnn*",
    "libcusparseLt*",
    "cuda/*",
]

# Python packages the analysis may reach through torch / pyqtgraph but advstudio never imports
EXCLUDED_MODULES = [
    "triton",
    "tkinter",
    "_tkinter",
    "IPython",
    "jupyter",
    "notebook",
    "pandas",
    "OpenGL",
    "pyqtgraph.examples",
    "pyqtgraph.opengl",
    "pyqtgraph.jupyter",
    "torch.utils.benchmark",
    "torch.utils.tensorboard",
    "functorch",
    "caffe2",
    "pytest",
    "_pytest",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.QtQuickControls2",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebChannel",
    "PySide6.Qt3DCore",
    "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtDesigner",
    "PySide6.QtHelp",
    "PySide6.QtPdf",
    "PySide6.QtPdfWidgets",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtUiTools",
    "PySide6.QtXml",
    "PySide6.QtSvgWidgets",
    "PySide6.QtNetwork",
    "PySide6.QtPrintSupport",
    "PySide6.QtConcurrent",
    "PySide6.QtStateMachine",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.QtSpatialAudio",
    "PySide6.QtTextToSpeech",
    "PySide6.QtHttpServer",
]


def _norm(path: str) -> str:
    path = path.replace("\\", "/")
    return path[len("_internal/") :] if path.startswith("_internal/") else path


def drop_patterns(variant: str) -> list[str]:
    patterns = list(COMMON_DROP)
    patterns += CPU_CUDA_DROP if variant == "cpu" else REGISTRY_CUDA_DROP
    patterns += [f"PySide6/Qt/lib/libQt6{name}" for name in QT_LIB_DROP]
    patterns += [f"PySide6/Qt{name.rstrip('*')}*.so" for name in QT_LIB_DROP if name[0].isupper()]
    patterns += [f"PySide6/Qt/lib/Qt{name}" for name in QT_LIB_DROP]  # macOS frameworks
    patterns += [f"PySide6/Qt6{name.rstrip('*')}*.dll" for name in QT_LIB_DROP]  # Windows
    return patterns


def dropped(dest: str, variant: str) -> bool:
    """True if the bundle path ``dest`` (relative to the bundle's contents folder) is left out."""
    path = _norm(dest)
    if path.startswith("torch/bin/"):  # test binaries, protoc; import torch checks for this one
        return not path.startswith("torch/bin/torch_shm_manager")
    if "/Qt/plugins/" in path or path.startswith("PySide6/plugins/"):
        plugin = path.split("/plugins/", 1)[1]
        return not any(fnmatchcase(plugin, pattern) for pattern in QT_PLUGINS_KEEP)
    return any(fnmatchcase(path, pattern) for pattern in drop_patterns(variant))


def _needed(path: str) -> list[str]:
    """The DT_NEEDED names of an ELF file (``objdump -p``, which PyInstaller itself requires)."""
    import subprocess

    out = subprocess.run(["objdump", "-p", path], capture_output=True, text=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.strip().startswith("NEEDED")]


def prune_orphans(binaries: list, site_dirs: list[str]) -> tuple[list, list[str]]:
    """Linux only: drop the system libraries at the bundle's top level that no kept binary needs.

    PyInstaller collects the dependencies of every binary before the spec filters the list, so
    leaving out, say, the GTK theme plugin still leaves GTK, cairo and pango behind. A candidate
    is a top-level library copied from outside the Python environment (not libpython); it stays
    if it is in the DT_NEEDED closure of the binaries that stay.
    """
    import os

    def is_candidate(entry) -> bool:
        dest, src, typecode = entry
        return (
            typecode != "SYMLINK"
            and "/" not in dest.replace("\\", "/")
            and not dest.startswith("libpython")
            and not any(os.path.abspath(src).startswith(d) for d in site_dirs)
        )

    candidates = {e[0]: e for e in binaries if is_candidate(e)}
    reached: set[str] = set()
    todo = [e[1] for e in binaries if e[0] not in candidates]
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen or not os.path.isfile(path):
            continue
        seen.add(path)
        for name in _needed(path):
            if name in candidates and name not in reached:
                reached.add(name)
                todo.append(candidates[name][1])
    dropped = sorted(set(candidates) - reached)
    return [e for e in binaries if e[0] not in dropped], dropped


def strip_symbols(folder, min_bytes: int = 4 << 20) -> int:
    """Linux: ``strip --strip-unneeded`` the shared libraries under ``folder`` whose symbol tables
    (``.symtab`` + ``.strtab``, which the dynamic loader never reads) are over ``min_bytes``:
    libtorch_cpu.so carries 89 MB of them, libtorch_cuda.so 72 MB. Returns the bytes saved."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("strip") is None or shutil.which("readelf") is None:
        return 0
    saved = 0
    for lib in sorted(Path(folder).rglob("*.so*")):
        if lib.is_symlink() or not lib.is_file():
            continue
        sections = subprocess.run(
            ["readelf", "-S", "-W", str(lib)], capture_output=True, text=True
        ).stdout
        size = 0
        for line in sections.splitlines():
            parts = line.replace("[ ", "[").split()
            if len(parts) > 5 and parts[1] in (".symtab", ".strtab"):
                size += int(parts[5], 16)
        if size < min_bytes:
            continue
        before = lib.stat().st_size
        subprocess.run(["strip", "--strip-unneeded", str(lib)], check=True)
        saved += before - lib.stat().st_size
    return saved
