"""Start-up: seconds from launching ``python -m advstudio`` to the window on screen, next to the
time ``import torch`` alone takes, measured in the same run (the window must not wait for it).

    uv run python benchmarks/startup.py [--runs 5]
    uv run python benchmarks/startup.py --exe dist/advstudio/advstudio

``--exe`` times a packaged executable (``packaging/build.py``'s bundle) next to
``uv run advstudio`` and ``python -m advstudio``, in the same run: to the window on screen, and
to ready (``--self-test``: PyTorch imported, the built-in model loaded, one prediction made).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def time_to_line(cmd: list[str], marker: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        for line in proc.stdout:
            if marker in line:
                return time.perf_counter() - t0
        raise RuntimeError(f"{cmd} ended without printing {marker!r}")
    finally:
        proc.kill()
        proc.wait()


def median_line(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values):.2f} s "
        f"(runs: {', '.join(f'{x:.2f}' for x in values)})"
    )


def compare_exe(exe: str, runs: int, env: dict[str, str]) -> None:
    """The packaged executable against the development ways to start, in the same run."""
    launchers = {"packaged": [exe]}
    if shutil.which("uv"):
        launchers["uv run advstudio"] = ["uv", "run", "--frozen", "advstudio"]
    launchers["python -m advstudio"] = [sys.executable, "-m", "advstudio"]
    window: dict[str, list[float]] = {k: [] for k in launchers}
    ready: dict[str, list[float]] = {k: [] for k in launchers}
    for _ in range(runs):  # interleaved, so that a busy moment hits every launcher alike
        for name, cmd in launchers.items():
            window[name].append(time_to_line(cmd, "window shown", env))
            ready[name].append(time_to_line(cmd + ["--self-test"], "self-test OK", env))
    for name in launchers:
        print(median_line(f"{name}: window on screen", window[name]))
        print(median_line(f"{name}: ready (torch + model + one prediction)", ready[name]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--exe",
        help="a packaged advstudio executable to time against "
        "`uv run advstudio` and `python -m advstudio`",
    )
    args = parser.parse_args()
    env = dict(
        os.environ,
        ADVSTUDIO_REPORT_STARTUP="1",
        QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
    )
    if args.exe:
        compare_exe(args.exe, args.runs, env)
        return
    window = [
        time_to_line([sys.executable, "-m", "advstudio"], "window shown", env)
        for _ in range(args.runs)
    ]
    torch_only = [
        time_to_line(
            [sys.executable, "-c", "import torch, torchvision; print('done')"], "done", env
        )
        for _ in range(args.runs)
    ]
    w, t = statistics.median(window), statistics.median(torch_only)
    print(f"window on screen: median {w:.2f} s (runs: {', '.join(f'{x:.2f}' for x in window)})")
    print(f"import torch + torchvision alone: median {t:.2f} s")
    print(f"ratio window / torch import: {w / t:.2f} (target: window < 1.5 s, well before torch)")


if __name__ == "__main__":
    main()
