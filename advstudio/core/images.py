"""Load and validate user images; convert between image files and [0, 1] tensors.

Decoding uses Pillow and numpy only (no torch), so the UI can show an image while PyTorch is
still loading. Pixels come back as float32 in [0, 1], shape (H, W, C) with C in {1, 3}:
grayscale stays 1 channel, palette/RGB/CMYK become RGB, transparency is composited on white,
16- and 32-bit grayscale are scaled by their true range (65535 for 16-bit PNG).

The loader refuses, with a message naming the file, what would crash, hang or mislead later:
paths that are not regular files (a FIFO would block the reader forever), images whose decoded
size would not fit in memory (judged from the header, before decoding), and float images with
NaN or infinite pixels (softmax of NaN is NaN: every later step would show nonsense). Photos are
turned upright by their EXIF orientation, as every image viewer shows them.
"""

from __future__ import annotations

import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from advstudio.core.atomic import atomic_write
from advstudio.core.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
    NonFiniteImageError,
    NotAnImageError,
    UnreadableImageError,
)

MAX_PIXELS = 40_000_000  # 40 MP: a 6,300 x 6,300 image; decoding takes ~160 MB as float32 RGB
MAX_DECODE_BYTES = 512 * 2**20  # width x height x channels x 4 (float32): 40 MP RGB fits, RGBA not
SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for models: ``pixels`` float32 (H, W, C) in [0, 1]."""

    pixels: np.ndarray
    path: Path | None
    source_mode: str  # Pillow mode of the file, e.g. "RGB", "P", "I;16"
    file_size: tuple[int, int]  # (width, height) as stored

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def describe(self) -> str:
        kind = "grayscale" if self.channels == 1 else "colour"
        return f"{self.width}×{self.height} {kind} (file mode {self.source_mode})"


def load_image(
    path: str | Path, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_DECODE_BYTES
) -> LoadedImage:
    """Read an image file into [0, 1] pixels, upright by its EXIF orientation.

    Raises a subclass of :class:`ImageLoadError` with a message fit for the user: the path
    vanished or is not a readable file, the file is empty, not an image, damaged/truncated, too
    large (``max_pixels``, or ``max_bytes`` as float32 pixels, judged from the header), or holds
    NaN / infinite pixels.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                _check_size(path.name, width, height, len(img.getbands()), max_pixels, max_bytes)
                img.load()
                if img.mode == "F":
                    _check_finite(path.name, np.asarray(img))
                ImageOps.exif_transpose(img, in_place=True)  # no copy when already upright
                return LoadedImage(to_pixels(img), path, img.mode, (width, height))
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageTooLargeError(
            f"{path.name} has {size}; advstudio opens images up to {max_pixels / 1e6:.0f} "
            "megapixels. Scale it down first"
        ) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{path.name} is not an image advstudio can read "
            "(supported: PNG, JPEG, BMP, WebP, GIF, TIFF)"
        ) from exc
    except PermissionError as exc:
        raise UnreadableImageError(f"{path.name} cannot be read (permission denied)") from exc
    except MemoryError as exc:
        raise ImageTooLargeError(
            f"{path.name} does not fit in memory once decoded. Scale it down first"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"{path.name} is damaged or truncated: {exc}") from exc


def _check_file(path: Path) -> None:
    """Refuse a path that is not a regular, non-empty file, before anything opens it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise UnreadableImageError(
                f"{path.name} is a link to nothing (its target was moved or deleted)"
            ) from None
        raise ImageNotFoundError(f"{path} does not exist (was it moved or deleted?)") from None
    except OSError as exc:  # ELOOP: a symlink loop; EACCES on a folder above it
        raise UnreadableImageError(f"{path.name} cannot be opened: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise NotAnImageError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableImageError(
            f"{path.name} is not a regular file (a pipe, socket or "
            "device), so it cannot be an image"
        )
    if info.st_size == 0:
        raise EmptyImageError(f"{path.name} is empty (0 bytes)")


def _check_size(
    name: str, width: int, height: int, channels: int, max_pixels: int, max_bytes: int
) -> None:
    """Refuse, from the header alone, an image too large to decode (nothing is allocated)."""
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}×{height} = {width * height / 1e6:.0f} megapixels; "
            f"advstudio opens images up to {max_pixels / 1e6:.0f} megapixels. Scale it down first"
        )
    needed = width * height * channels * 4
    if needed > max_bytes:
        raise ImageTooLargeError(
            f"{name} ({width}×{height}, {channels} channels) would take {needed / 2**20:.0f} MiB "
            f"once decoded; advstudio decodes up to {max_bytes / 2**20:.0f} MiB per image. "
            "Scale it down first"
        )


def _check_finite(name: str, values: np.ndarray) -> None:
    """Refuse float pixels that are NaN or infinite (rather than silently clipping them)."""
    count = int((~np.isfinite(values)).sum())
    if count:
        raise NonFiniteImageError(
            f"{name} has {count} {'pixels that are' if count > 1 else 'pixel that is'} NaN "
            "or infinite (a float image with "
            "missing data?); replace them with numbers and open it again"
        )


def to_pixels(img: Image.Image) -> np.ndarray:
    """A Pillow image -> float32 (H, W, 1 or 3) in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        return arr[..., None]
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if mode == "I" and arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            scale = max(1.0, float(arr.max(initial=1.0)))
        return np.clip(arr / scale, 0, 1)[..., None]
    if mode == "1":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGBA")
    elif mode == "PA":
        img = img.convert("LA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    if img.mode in ("LA", "RGBA"):
        base = Image.new(img.mode, img.size, (255,) * len(img.mode))
        img = Image.alpha_composite(base.convert("RGBA"), img.convert("RGBA"))
        img = img.convert("L" if mode in ("LA", "PA") else "RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] not in (1, 3):
        raise ImageLoadError(f"unsupported channel count {arr.shape[2]} (mode {mode})")
    return np.ascontiguousarray(arr)


def pixels_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) or (C, H, W)-agnostic float [0, 1] -> uint8 (H, W, C), rounding to nearest."""
    return np.clip(np.rint(np.asarray(pixels, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def save_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write (H, W, 1 or 3) [0, 1] pixels as a lossless 8-bit PNG; atomic (temp file + rename)."""
    path = Path(path)
    arr = pixels_to_uint8(pixels)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    return atomic_write(path, lambda f: img.save(f, format="PNG"))


def to_tensor(image: LoadedImage | np.ndarray):
    """(H, W, C) [0, 1] pixels -> torch float32 (1, C, H, W)."""
    import torch

    pixels = image.pixels if isinstance(image, LoadedImage) else image
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).unsqueeze(0).float()


def from_tensor(x) -> np.ndarray:
    """torch (1, C, H, W) or (C, H, W) -> numpy (H, W, C) float32, detached, on CPU."""
    if x.dim() == 4:
        x = x[0]
    return x.detach().cpu().float().numpy().transpose(1, 2, 0).copy()
