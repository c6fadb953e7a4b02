"""Data sets: the bundled digits (offline), batching, and the older fixed-size folder and
torchvision readers the GAN trainer uses.

The one data-set choice every lab shares (digits, folders, torchvision sets, ImageNet-style
folders, at their native shape) is :mod:`advstudio.core.data.sets`; resizing a set to a model's
input is :mod:`advstudio.core.data.fit`. Pixels are float32 in [0, 1]; labels int64. Importing this
package is cheap (torch is
imported inside the functions), so configs can check a ``dataset`` field without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from advstudio.core.resources import resources_dir

if TYPE_CHECKING:
    import torch

DIGIT_CLASSES = [str(i) for i in range(10)]


@lru_cache(maxsize=1)
def _digits_npz() -> dict[str, np.ndarray]:
    with np.load(resources_dir() / "digits" / "digits.npz") as z:
        return {k: z[k] for k in z.files}


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled MNIST digits: ``split`` is ``"train"`` (4,000) or ``"test"`` (1,000).

    Returns ``(x, y)`` with ``x`` float32 in [0, 1] of shape (N, 1, 28, 28) and ``y`` int64 (N,).
    Fresh tensors each call, so callers may modify them.
    """
    import torch

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    z = _digits_npz()
    x = torch.from_numpy(z[f"x_{split}"].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(z[f"y_{split}"].astype(np.int64))
    return x, y


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
):
    """Yield ``(xb, yb)`` mini-batches; the last one may be smaller."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    n = len(x)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


@dataclass
class FolderImages:
    """Images read from a folder: ``x`` float32 (N, C, S, S) in [0, 1]; ``skipped`` lists the
    files that could not be read, with the reason."""

    x: torch.Tensor
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def load_image_folder(
    folder: str | Path, size: int, channels: int, max_images: int = 20_000
) -> FolderImages:
    """Every image under ``folder`` (recursively, sorted), centre-cropped to a square, resized to
    ``size`` x ``size`` and converted to ``channels`` (1: ITU-R 601 luma; 3: grey repeated).

    Mixed sizes and modes are fine (each is converted); unreadable files are skipped and
    counted. Raises :class:`ConfigError` when the folder is missing or holds no readable image.
    """
    import torch
    from PIL import Image

    from advstudio.core.errors import ConfigError, ImageLoadError
    from advstudio.core.images import SUPPORTED_SUFFIXES, load_image

    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels}")
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"image folder not found: {folder}")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()
    )[:max_images]
    images, files, skipped = [], [], []
    for path in paths:
        try:
            pixels = load_image(path).pixels
        except ImageLoadError as exc:
            skipped.append((path, str(exc)))
            continue
        h, w = pixels.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = np.ascontiguousarray(pixels[top : top + side, left : left + side])
        mode = "L" if square.shape[2] == 1 else "RGB"
        img = Image.fromarray(
            np.rint(square[..., 0] * 255).astype(np.uint8)
            if mode == "L"
            else np.rint(square * 255).astype(np.uint8),
            mode,
        )
        img = img.resize((size, size), Image.Resampling.LANCZOS)
        img = img.convert("L" if channels == 1 else "RGB")
        arr = np.asarray(img, dtype=np.float32) / 255.0
        images.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
        files.append(path)
    if not images:
        why = f" ({len(skipped)} unreadable)" if skipped else ""
        raise ConfigError(
            f"{folder} holds no readable images{why}; supported: " + ", ".join(SUPPORTED_SUFFIXES)
        )
    return FolderImages(torch.from_numpy(np.stack(images)), files, skipped)


@dataclass
class LabelledFolder:
    """A classification set read from a folder with one sub-folder per class."""

    x: torch.Tensor  # float32 (N, C, S, S) in [0, 1]
    y: torch.Tensor  # int64 (N,)
    class_names: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def split(self, test_fraction: float = 0.2, seed: int = 0):
        """Stratified, seeded train / held-out split: ``((x, y), (x_test, y_test))``."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        train, test = [], []
        for c in range(len(self.class_names)):
            idx = torch.nonzero(self.y == c).reshape(-1)
            idx = idx[torch.randperm(len(idx), generator=gen)]
            n_test = int(round(len(idx) * test_fraction))
            test.append(idx[:n_test])
            train.append(idx[n_test:])
        tr, te = torch.cat(train), torch.cat(test)
        return (self.x[tr], self.y[tr]), (self.x[te], self.y[te])


def load_labelled_folder(
    folder: str | Path, size: int = 28, channels: int = 1, max_classes: int | None = None
) -> LabelledFolder:
    """``folder/<class name>/<images>``: classes in sorted order of their sub-folder names."""
    import torch

    from advstudio.core.errors import ConfigError

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"image folder not found: {folder}")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ConfigError(
            f"{folder} needs one sub-folder per class (at least 2); found {len(classes)}"
        )
    if max_classes is not None and len(classes) > max_classes:
        raise ConfigError(
            f"{folder} has {len(classes)} classes; this model has "
            f"{max_classes} outputs, so at most {max_classes} sub-folders"
        )
    xs, ys, skipped = [], [], []
    for label, sub in enumerate(classes):
        try:
            part = load_image_folder(sub, size, channels)
        except ConfigError as exc:
            raise ConfigError(f"class {sub.name!r}: {exc}") from exc
        xs.append(part.x)
        ys.append(torch.full((len(part.x),), label, dtype=torch.long))
        skipped += part.skipped
    return LabelledFolder(torch.cat(xs), torch.cat(ys), [p.name for p in classes], skipped)


TORCHVISION_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_root() -> Path:
    """Where torchvision data sets are cached
    (:func:`advstudio.core.data.sets.torchvision_root`)."""
    from advstudio.core.data.sets import torchvision_root as root

    return root()


def load_torchvision_set(
    name: str, train: bool = True, size: int = 28, channels: int = 1, limit: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """MNIST, Fashion-MNIST or CIFAR-10 via torchvision (downloaded on first use, so online
    only), converted to ``(x (N, C, size, size) in [0, 1], y, class names)`` (the GAN's
    reader; the labs read sets at native shape with :func:`~advstudio.core.data.sets.load_dataset`).

    Raises :class:`DownloadError` with a clear message when the download fails (offline).
    """
    import torch
    import torch.nn.functional as F

    from advstudio.core.data.sets import torchvision_set
    from advstudio.core.errors import ConfigError

    if name not in TORCHVISION_SETS:
        raise ConfigError(f"unknown data set {name!r}; allowed: {', '.join(TORCHVISION_SETS)}")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels}")
    ds = torchvision_set(name, train)
    data = ds.data if not isinstance(ds.data, np.ndarray) else torch.from_numpy(ds.data)
    data = torch.as_tensor(data)
    if limit:
        data = data[:limit]
    x = data.float() / 255.0
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    elif x.shape[1] == 1 and channels == 3:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp(0, 1)
    y = torch.as_tensor(ds.targets)[: len(x)].long()
    return x.contiguous(), y, list(ds.classes)
