"""Which process owns a running run, and is it still alive?

A run left ``running`` by a process that crashed or was killed must become ``interrupted`` the
next time the store is opened, but a run that another live process (the app, a second CLI) is
recording must not. A pid alone cannot tell: the operating system reuses pids, so a crashed run's
pid may belong to an unrelated process a day later. The owner is therefore the pid plus a *start
token* that identifies that particular process: on Linux the boot id and the process start time
from ``/proc`` (clock ticks since boot), on Windows the process creation time. Where no token is
available (macOS) only the pid is checked.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STILL_ACTIVE = 259  # Windows GetExitCodeProcess: process has not exited


@dataclass(frozen=True)
class Owner:
    pid: int
    token: str  # "" when the platform gives none
    host: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, _start_token(pid) or "", platform.node())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Owner:
        return cls(int(data.get("pid", 0)), str(data.get("token", "")), str(data.get("host", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "token": self.token, "host": self.host}

    def alive(self) -> bool:
        """False only when we are sure the owner is gone; a process on another host (a store
        on a shared drive) cannot be checked and counts as alive."""
        if self.host and self.host != platform.node():
            return True
        if self.pid <= 0:
            return False
        if sys.platform == "win32":
            exists, token = _windows_process(self.pid)
        else:
            exists, token = _posix_process(self.pid)
        if not exists:
            return False
        return not (self.token and token and token != self.token)


def _start_token(pid: int) -> str | None:
    if sys.platform == "win32":
        return _windows_process(pid)[1] or None
    return _posix_process(pid)[1] or None


def _posix_process(pid: int) -> tuple[bool, str]:
    """(exists, start token). ``os.kill(pid, 0)`` checks existence without sending a signal."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, ""
    except PermissionError:
        pass  # exists, but belongs to another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except OSError:  # no /proc (macOS) or hidden
        return True, ""
    fields = stat[stat.rfind(")") + 2 :].split()  # the name in (...) may contain spaces
    if not fields or fields[0] in ("Z", "X"):  # zombie: dead, only not yet reaped
        return False, ""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    return True, f"{boot_id}/{fields[19]}"


def _windows_process(pid: int) -> tuple[bool, str]:
    """(exists, creation time) through the Win32 API; ``os.kill`` would terminate the process."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.GetProcessTimes.argtypes = (wintypes.HANDLE, *[ctypes.POINTER(wintypes.FILETIME)] * 4)
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5, ""  # ERROR_ACCESS_DENIED: exists, not ours
    try:
        code = wintypes.DWORD()
        if kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) and code.value != _STILL_ACTIVE:
            return False, ""
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
            return True, ""
        created = times[0]
        return True, str((created.dwHighDateTime << 32) | created.dwLowDateTime)
    finally:
        kernel32.CloseHandle(handle)
