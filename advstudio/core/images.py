"""Load and validate user images; convert between image files and [0, 1] tensors.

Decoding uses Pillow and numpy only (no torch), so the UI can show an image while PyTorch is
still loading. Pixels come back as float32 in [0, 1], shape (H, W, C) with C in {1, 3}:
grayscale stays 1 channel, palette/RGB/CMYK become RGB, transparency is composited on white,
16- and 32-bit grayscale are scaled by their true range (65535 for 16-bit PNG).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from advstudio.core.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageLoadError,
    ImageNotFoundError,
    ImageTooLargeError,
    NotAnImageError,
)

MAX_PIXELS = 40_000_000  # 40 MP: a 6,300 x 6,300 image; decoding takes ~160 MB as float32 RGB
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


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image file into [0, 1] pixels.

    Raises a subclass of :class:`ImageLoadError` with a message fit for the user: the path
    vanished, the file is empty, not an image, damaged/truncated, or too large.
    """
    path = Path(path)
    if not path.exists():
        raise ImageNotFoundError(f"{path} does not exist (was it moved or deleted?)")
    if path.is_dir():
        raise NotAnImageError(f"{path} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise EmptyImageError(f"{path.name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{path.name} is {width}×{height} = {width * height / 1e6:.0f} megapixels; "
                        f"advstudio opens images up to {max_pixels / 1e6:.0f} megapixels. "
                        "Scale it down first.")
                img.load()
                return LoadedImage(to_pixels(img), path, img.mode, (width, height))
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageTooLargeError(
            f"{path.name} has {size}; advstudio opens images up to {max_pixels / 1e6:.0f} "
            "megapixels. Scale it down first.") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{path.name} is not an image advstudio can read "
            "(supported: PNG, JPEG, BMP, WebP, GIF, TIFF)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"{path.name} is damaged or truncated: {exc}") from exc


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
    tmp = path.with_name(f".{path.name}.part")
    try:
        img.save(tmp, format="PNG")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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
