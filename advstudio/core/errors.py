"""Typed exceptions of the core. The UI shows ``str(exc)`` to the user, so messages are complete
sentences that name the bad value and what is allowed."""

from __future__ import annotations


class AdvStudioError(Exception):
    """Base class of every error the core raises on purpose."""


class ImageLoadError(AdvStudioError, ValueError):
    """An image file could not be turned into pixels."""


class ImageNotFoundError(ImageLoadError, FileNotFoundError):
    """The path does not exist (any more)."""


class EmptyImageError(ImageLoadError):
    """The file has zero bytes."""


class NotAnImageError(ImageLoadError):
    """The file is not in an image format we can read."""


class CorruptImageError(ImageLoadError):
    """The header was readable but the pixel data is damaged or truncated."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels than we are willing to decode."""


class NonFiniteImageError(ImageLoadError):
    """A float image (e.g. a 32-bit TIFF) holds NaN or infinite pixels: no model can use them."""


class UnreadableImageError(ImageLoadError):
    """The path is not a regular readable file: a FIFO, a device, a link loop, no permission."""


class ModelLoadError(AdvStudioError, ValueError):
    """A model could not be built or its weights do not fit."""


class UnsafeModelFileError(ModelLoadError):
    """A model file holds arbitrary pickled objects; we refuse to unpickle it."""


class ModelHangError(ModelLoadError):
    """A model file's code did not return (load or forward pass) within the time limit of its
    probe in a child process (:mod:`advstudio.core.models.isolation`); the child was killed."""


class ModelCrashError(ModelLoadError):
    """A model file's code crashed the child process that probed it (a signal such as SIGSEGV
    or SIGABRT from native code, or an exit without a result)."""


class DownloadError(AdvStudioError, OSError):
    """Weights could not be downloaded (typically: offline)."""


class DeviceError(AdvStudioError, ValueError):
    """The requested device does not exist on this machine."""


class ConfigError(AdvStudioError, ValueError):
    """A job configuration has a bad value."""


def explain(exc: BaseException) -> str:
    """One friendly sentence for any exception, for the UI and the CLI.

    Our own errors already carry user-facing messages; a few library errors get a hint.
    """
    name = type(exc).__name__
    text = str(exc).strip() or name
    if name == "OutOfMemoryError" or "out of memory" in text.lower():
        return (
            "The device ran out of memory. Try a smaller batch size, a smaller model or "
            "image, or run on the CPU (Settings ▸ Device). Details: " + text.splitlines()[0]
        )
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory. Try a smaller batch size or image."
    if isinstance(exc, AdvStudioError):
        return text
    return f"{name}: {text}"


class AttackError(AdvStudioError, ValueError):
    """An attack cannot run on this model or input (e.g. the model gives no input gradients)."""


class TrainingDivergedError(AdvStudioError, FloatingPointError):
    """A training loss or gradient became NaN, infinite or exploded; the run was stopped.

    ``quantity`` names what went bad (e.g. ``"loss_d"``), ``step`` when, and ``checkpoint`` is
    the last good checkpoint kept on disk (``""`` when there is none).
    """

    def __init__(
        self, message: str, quantity: str = "", step: int = 0, checkpoint: str = ""
    ) -> None:
        super().__init__(message)
        self.quantity, self.step, self.checkpoint = quantity, step, checkpoint


class CheckpointError(AdvStudioError, ValueError):
    """A checkpoint file is missing, unreadable, or belongs to another model or run."""


class NonFiniteOutputError(AdvStudioError, FloatingPointError):
    """A model's scores for an input are NaN or infinite: no prediction can be shown."""


class DiskFullError(AdvStudioError, OSError):
    """A write failed because the disk (or the user's quota) is full."""


class ReadOnlyError(AdvStudioError, OSError):
    """A write failed because the folder or its disk is read-only (or not writable by us)."""
