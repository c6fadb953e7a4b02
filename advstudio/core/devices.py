"""The one place that knows about devices: CUDA > MPS > CPU."""

from __future__ import annotations

import torch

from advstudio.core.errors import DeviceError


def available_devices() -> list[str]:
    """Devices usable on this machine, best first (always ends with ``"cpu"``)."""
    found = []
    if torch.cuda.is_available():
        found += [
            f"cuda:{i}" if torch.cuda.device_count() > 1 else "cuda"
            for i in range(torch.cuda.device_count())
        ]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def pick_device(preference: str = "auto") -> torch.device:
    """``"auto"`` -> the best available device; otherwise the named one if it exists here."""
    devices = available_devices()
    if preference in ("", "auto"):
        return torch.device(devices[0])
    if preference == "cuda" and "cuda:0" in devices:  # several GPUs: plain "cuda" is the first
        return torch.device("cuda:0")
    if preference == "cuda:0" and "cuda" in devices:  # one GPU: its index is 0
        return torch.device("cuda")
    if preference not in devices:
        raise DeviceError(
            f"device {preference!r} is not available on this machine; available: "
            + ", ".join(["auto", *devices])
        )
    return torch.device(preference)


def leave_a_core_for_the_window() -> int:
    """Give the calling thread (a GUI job's) one intra-op thread fewer than the machine has
    cores, at least one; returns the count set.

    On a 2-core machine a training on both cores starved the UI thread: the window froze for
    70-130 ms at a time while a DCGAN trained with live plots, against under 50 ms with one core
    left free. With PyTorch's OpenMP backend the setting belongs to the calling thread, so the
    UI thread and the headless CLI keep theirs.
    """
    import os

    threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))
    torch.set_num_threads(threads)
    return threads


def describe(device: str | torch.device) -> str:
    """A short human label, e.g. ``"CUDA (NVIDIA H100)"`` or ``"CPU (2 threads)"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"
