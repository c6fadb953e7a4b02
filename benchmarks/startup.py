"""Start-up: seconds from launching ``python -m advstudio`` to the window on screen, next to the
time ``import torch`` alone takes, measured in the same run (the window must not wait for it).

    uv run python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def time_to_line(cmd: list[str], marker: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        for line in proc.stdout:
            if marker in line:
                return time.perf_counter() - t0
        raise RuntimeError(f"{cmd} ended without printing {marker!r}")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, ADVSTUDIO_REPORT_STARTUP="1",
               QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    window = [time_to_line([sys.executable, "-m", "advstudio"], "window shown", env)
              for _ in range(args.runs)]
    torch_only = [time_to_line([sys.executable, "-c", "import torch, torchvision; print('done')"],
                               "done", env) for _ in range(args.runs)]
    w, t = statistics.median(window), statistics.median(torch_only)
    print(f"window on screen: median {w:.2f} s (runs: {', '.join(f'{x:.2f}' for x in window)})")
    print(f"import torch + torchvision alone: median {t:.2f} s")
    print(f"ratio window / torch import: {w / t:.2f} (target: window < 1.5 s, well before torch)")


if __name__ == "__main__":
    main()
