"""The start-up job: import PyTorch (seconds) on a worker thread and pick the device.

Its own module because both the main window and a tab run alone (``ui/preview.py``) start it;
kept in ``main_window.py`` it made the preview import the window and the window import the
tabs that import the preview.
"""

from __future__ import annotations

from advstudio.core.jobs import Job, Log, Progress


def load_torch_job(device_preference: str) -> Job[str]:
    """Import PyTorch (seconds) and pick the device; returns the device string."""
    yield Progress(0, 0, "loading PyTorch")
    import pyqtgraph  # noqa: F401 - plots of the later tabs; imported here, off the UI thread
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    from advstudio.core.devices import pick_device
    from advstudio.core.errors import DeviceError
    from advstudio.core.models import registry  # noqa: F401 - warm the import

    try:
        return str(pick_device(device_preference))
    except DeviceError as exc:
        yield Log(f"{exc}; using the best available device instead")
        return str(pick_device("auto"))
