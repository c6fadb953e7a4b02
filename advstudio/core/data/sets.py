"""The one data-set choice every lab shares, at the images' native shape.

A job names its data with one string field, ``dataset``, checked by :func:`check_dataset`:

- ``"digits"``: the bundled MNIST digits (1×28×28, 4,000 train / 1,000 test, offline);
- ``"folder:<path>"``: an ImageFolder (one sub-folder per class, class names from the folder
  names, sorted), a flat folder with a ``labels.csv`` (rows ``file,label``), or either layout
  under ``train/`` and ``test/`` sub-folders;
- ``"torchvision:<name>"``: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``svhn``,
  downloaded once into :func:`torchvision_root` (offline: a message naming that folder);
- ``"imagenet-folder:<path>"``: an ImageNet-style validation folder, one sub-folder per wnid,
  for the zoo models: short side scaled to 256, centre crop 224 (the zoo's evaluation recipe).

:func:`load_dataset` returns a :class:`Dataset`: float32 pixels in [0, 1] of shape (N, C, H, W),
int64 labels, class names, and the files it skipped with why. Nothing is resized to fit a
model here; that is :func:`advstudio.core.data.fit.fit_to_model`'s job, on the model's card.

A trainer that needs images of one size (the GAN) reads a set and fits it itself::

    data = load_dataset(config.dataset, "train", limit=n, seed=seed)
    x, note = fit_to_model(data.x, (channels, size, size), "center-crop")
    # log data.description, data.skipped_line() and note
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from advstudio.core import validate as v
from advstudio.core.data.spec import (  # noqa: F401  (describe_shape, check_*: the API)
    TORCHVISION,
    DatasetSpec,
    check_dataset,
    check_split,
    describe_shape,
)
from advstudio.core.errors import ConfigError, DownloadError

TEST_FRACTION = 0.2
"""A folder without ``train/`` and ``test/`` holds both: 20 % of each class (a fixed draw,
whatever the job's seed, so train and test never overlap) is its test split."""
LABELS_FILE = "labels.csv"
SYNSET_FILES = ("LOC_synset_mapping.txt", "synsets.txt")
IMAGENET_SHORT_SIDE, IMAGENET_CROP = 256, 224


@dataclass
class Dataset:
    """Images of one split at their native shape: ``x`` float32 (N, C, H, W) in [0, 1], ``y``
    int64 (N,) indexing ``class_names``. ``skipped``: (file name, why) of every file that could
    not be read; ``notes``: what was done to the rest (e.g. mixed sizes resized)."""

    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    @property
    def description(self) -> str:
        """``"32×32 RGB, 10 classes, 1,000 images"`` (plus the notes)."""
        return ", ".join(
            [
                f"{describe_shape(self.shape)}",
                f"{len(self.class_names)} classes",
                f"{len(self.x):,} images",
                *self.notes,
            ]
        )

    def skipped_line(self, most: int = 5) -> str:
        """One line naming the skipped files (the first ``most``), or ``""``."""
        if not self.skipped:
            return ""
        names = ", ".join(f"{n} ({why})" for n, why in self.skipped[:most])
        more = f" and {len(self.skipped) - most} more" if len(self.skipped) > most else ""
        return f"{len(self.skipped)} unreadable file(s) skipped: {names}{more}"


def load_dataset(
    spec: str | DatasetSpec, split: str = "test", *, limit: int = 0, seed: int = 0
) -> Dataset:
    """The ``split`` ("train", "test" or "all") of ``spec``; ``limit`` > 0 keeps that many
    images, drawn with ``torch.randperm(n, generator=manual_seed(seed))`` (the bundled splits
    are sorted by class, so a prefix would be a few classes only); 0 keeps all, in order.
    A folder with a limit reads its files in that seeded order until ``limit`` images have
    decoded, so a limit on a large folder reads little (and lists only the unreadable files
    it met on the way).

    Raises :class:`ConfigError` (no such folder, no readable image) or :class:`DownloadError`.
    """
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec)
    check_split(split)
    v.whole("limit", limit, 0, hint="0 = all")
    if spec.kind == "digits":
        return _limited(_digits(split), limit, seed)
    if spec.kind == "torchvision":
        return _limited(_torchvision(spec.arg, split), limit, seed)
    return _read_folder(spec, split, limit, seed)


def _pick(n: int, limit: int, seed: int) -> torch.Tensor:
    if limit and limit < n:
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit]
    return torch.arange(n)


def _limited(data: Dataset, limit: int, seed: int) -> Dataset:
    idx = _pick(len(data.x), limit, seed)
    if len(idx) < len(data.x):
        data.x, data.y = data.x[idx], data.y[idx]
    return data


def _digits(split: str) -> Dataset:
    from advstudio.core.data import DIGIT_CLASSES, load_digits

    parts = [load_digits(s) for s in (("train", "test") if split == "all" else (split,))]
    return Dataset(
        torch.cat([p[0] for p in parts]),
        torch.cat([p[1] for p in parts]),
        list(DIGIT_CLASSES),
        "digits",
    )


# ----------------------------------------------------------------------------- torchvision


def torchvision_root() -> Path:
    """Where torchvision data sets are downloaded and cached (under the user data folder)."""
    from advstudio.core.runs.paths import default_store_root

    return default_store_root() / "datasets"


def torchvision_set(name: str, train: bool) -> Any:
    """The torchvision data set object, downloaded once (its files are checked first, so a
    cached set needs no network). Raises :class:`DownloadError` naming the folder when offline."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    root = torchvision_root()
    kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
    try:
        return cls(root=str(root), download=True, **kwargs)
    except (OSError, RuntimeError) as exc:
        raise DownloadError(
            f"could not get the {name} data set: {exc}. torchvision downloads it on first use, "
            f"so you need to be online once; or put its files in {root} (torchvision's own "
            "layout). The bundled digits work offline."
        ) from exc


def torchvision_files(name: str) -> list[tuple[str, Path]]:
    """``(url, path)`` of each file torchvision fetches for ``name``, at the path where it looks
    first (a file already there with the right checksum is not fetched again); ``[]`` for a
    class of another layout."""
    import torchvision.datasets as tvd

    cls, root = getattr(tvd, TORCHVISION[name]), torchvision_root()
    if name == "svhn" and hasattr(cls, "split_list"):
        return [(cls.split_list[s][0], root / cls.split_list[s][1]) for s in ("train", "test")]
    if hasattr(cls, "mirrors") and hasattr(cls, "resources"):  # MNIST, Fashion-MNIST
        raw = root / cls.__name__ / "raw"
        return [(cls.mirrors[0] + filename, raw / filename) for filename, _md5 in cls.resources]
    if hasattr(cls, "url") and hasattr(cls, "filename"):  # CIFAR-10 / -100: one archive
        return [(cls.url, root / cls.filename)]
    return []  # another layout: torchvision downloads it itself, without progress


def torchvision_cached(name: str) -> bool:
    """Whether ``name`` reads without a download (its files put there by hand count too)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    try:
        for train in (True, False):
            kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
            cls(root=str(torchvision_root()), download=False, **kwargs)
    except (OSError, RuntimeError):
        return False
    return True


def _torchvision(name: str, split: str) -> Dataset:
    xs, ys, classes = [], [], []
    for train in (True, False) if split == "all" else (split == "train",):
        ds = torchvision_set(name, train)
        data = torch.as_tensor(np.asarray(ds.data))
        x = data.unsqueeze(1) if data.dim() == 3 else data
        if name not in ("svhn",) and data.dim() == 4:  # CIFAR: (N, H, W, C)
            x = data.permute(0, 3, 1, 2)
        xs.append(x)
        ys.append(torch.as_tensor(np.asarray(ds.labels if name == "svhn" else ds.targets)).long())
        classes = list(getattr(ds, "classes", [str(i) for i in range(10)]))
    x = torch.cat(xs).float().div_(255.0).contiguous()
    return Dataset(x, torch.cat(ys), classes, f"torchvision:{name}")


# ----------------------------------------------------------------------------- folders


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _image_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = _class_folders(root)
    if len(classes) < 2:
        raise ConfigError(
            f"{root} needs one sub-folder per class (at least 2) or a "
            f"{LABELS_FILE}; found {len(classes)} sub-folder(s)"
        )
    files, labels = [], []
    for label, sub in enumerate(classes):
        found = _files(sub)
        files += found
        labels += [label] * len(found)
    return files, labels, [p.name for p in classes]


def _labels_csv(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """``labels.csv`` rows ``file,label`` (a header row naming ``file`` is skipped); classes are
    the labels sorted (numerically when all are whole numbers)."""
    with (root / LABELS_FILE).open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip()]
    if rows and rows[0][0].strip().lower() in ("file", "filename", "path"):
        rows = rows[1:]
    bad = [r for r in rows if len(r) < 2]
    if bad or not rows:
        raise ConfigError(
            f"{root / LABELS_FILE} needs rows 'file,label'"
            + (f"; row {bad[0]!r} has no label" if bad else "; it is empty")
        )
    names = {r[1].strip() for r in rows}
    numeric = all(re.fullmatch(r"-?\d+", n) for n in names)
    classes = sorted(names, key=int if numeric else str)
    index = {c: i for i, c in enumerate(classes)}
    return [root / r[0].strip() for r in rows], [index[r[1].strip()] for r in rows], classes


def _imagenet_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Class indices in the zoo models' order: a ``LOC_synset_mapping.txt`` (``wnid name``
    per line, the 1,000 classes in order) when present; otherwise all 1,000 wnid folders, whose
    sorted order is ImageNet-1k's class order."""
    folders = {p.name: p for p in _class_folders(root)}
    mapping = next((root / n for n in SYNSET_FILES if (root / n).is_file()), None)
    if mapping is not None:
        lines = [ln.split(maxsplit=1) for ln in mapping.read_text().splitlines() if ln.strip()]
        wnids = [ln[0] for ln in lines]
        names = [ln[1].split(",")[0].strip() if len(ln) > 1 else ln[0] for ln in lines]
    elif len(folders) == 1000 and all(re.fullmatch(r"n\d{8}", w) for w in folders):
        wnids = names = sorted(folders)
    else:
        raise ConfigError(
            f"{root} has {len(folders)} class folder(s); an ImageNet-style folder "
            "holds all 1,000 wnid folders (n01440764 ...), or a subset with a "
            f"{SYNSET_FILES[0]} listing the 1,000 wnids in order"
        )
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        if wnid in folders:
            found = _files(folders[wnid])
            files += found
            labels += [label] * len(found)
    return files, labels, list(names)


def _listing(root: Path, kind: str) -> tuple[list[Path], list[int], list[str]]:
    if not root.is_dir():
        raise ConfigError(f"data folder not found: {root}")
    if kind == "imagenet-folder":
        return _imagenet_folder(root)
    if (root / LABELS_FILE).is_file():
        return _labels_csv(root)
    return _image_folder(root)


def _test_rows(labels: list[int]) -> set[int]:
    """The fixed, stratified 20 % of each class that is a one-folder set's test split."""
    gen = torch.Generator().manual_seed(0)
    chosen: set[int] = set()
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for rows in by_class.values():
        order = torch.randperm(len(rows), generator=gen).tolist()
        chosen.update(rows[j] for j in order[: int(round(len(rows) * TEST_FRACTION))])
    return chosen


def _split_listing(root: Path, kind: str, split: str) -> tuple[list[Path], list[int], list[str]]:
    parts = [root / s for s in ("train", "test")]
    if kind == "folder" and all(p.is_dir() for p in parts):
        listings = [_listing(p, kind) for p in parts]
        if listings[0][2] != listings[1][2]:
            raise ConfigError(f"{root}: train/ and test/ must hold the same classes")
        chosen = listings if split == "all" else [listings[split == "test"]]
        return (
            [f for ls in chosen for f in ls[0]],
            [y for ls in chosen for y in ls[1]],
            listings[0][2],
        )
    files, labels, classes = _listing(root, kind)
    if split != "all":
        test = _test_rows(labels)
        keep = [i for i in range(len(files)) if (i in test) == (split == "test")]
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    return files, labels, classes


def _decode(path: Path, kind: str) -> torch.Tensor:
    """One file -> (C, H, W) in [0, 1], alpha dropped; ImageNet folders get the zoo's crop."""
    from advstudio.core.images import load_image

    pixels = load_image(path).pixels
    x = torch.from_numpy(np.ascontiguousarray(pixels[..., :3].transpose(2, 0, 1)))
    if kind == "imagenet-folder":
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        h, w = x.shape[1:]
        scale = IMAGENET_SHORT_SIDE / min(h, w)
        size = (max(IMAGENET_CROP, round(h * scale)), max(IMAGENET_CROP, round(w * scale)))
        x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[
            0
        ]
        top, left = (size[0] - IMAGENET_CROP) // 2, (size[1] - IMAGENET_CROP) // 2
        x = x[:, top : top + IMAGENET_CROP, left : left + IMAGENET_CROP].clamp(0, 1)
    return x.float()


def _read_folder(spec: DatasetSpec, split: str, limit: int, seed: int) -> Dataset:
    from advstudio.core.errors import ImageLoadError

    root = Path(spec.arg).expanduser()
    files, labels, classes = _split_listing(root, spec.kind, split)
    order = (
        torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
        if limit and limit < len(files)
        else range(len(files))
    )
    images, ys, skipped = [], [], []
    for i in order:
        if limit and len(images) == limit:
            break
        try:
            images.append(_decode(files[i], spec.kind))
        except (ImageLoadError, OSError) as exc:
            skipped.append((files[i].name, _reason(exc)))
            continue
        ys.append(labels[i])
    if not images:
        raise ConfigError(
            f"{root} holds no readable images for the {split} split"
            + (f" ({len(skipped)} unreadable)" if skipped else "")
        )
    x, notes = _stack(images)
    return Dataset(x, torch.tensor(ys, dtype=torch.long), classes, str(spec), skipped, notes)


def _reason(exc: Exception) -> str:
    from advstudio.core.errors import ImageNotFoundError, NotAnImageError

    if isinstance(exc, (ImageNotFoundError, FileNotFoundError)):
        return "missing"
    return "not an image" if isinstance(exc, NotAnImageError) else "unreadable"


def _stack(images: list[torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """One batch from images of possibly mixed modes and sizes: colour when any is colour
    (grey repeated), every image at the most common size (the others resized, and said so)."""
    notes = []
    channels = max(im.shape[0] for im in images)
    size = Counter(tuple(im.shape[1:]) for im in images).most_common(1)[0][0]
    resized = 0
    out = []
    for im in images:
        if im.shape[0] != channels:
            im = im.expand(channels, -1, -1)
        if tuple(im.shape[1:]) != size:
            im = F.interpolate(
                im[None], size=size, mode="bilinear", antialias=True, align_corners=False
            )[0].clamp(0, 1)
            resized += 1
        out.append(im)
    if resized:
        notes.append(f"{resized} of other sizes resized to {size[0]}×{size[1]}")
    return torch.stack(out).contiguous(), notes


def summary(spec: str | DatasetSpec) -> str:
    """A quick line on what ``spec`` is, cheap enough for the UI thread: nothing downloaded,
    only a folder's listing read and its first image decoded (the unreadable files are counted
    when a job loads the set, and it logs them). Raises :class:`ConfigError` like the loader."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec)
    if spec.kind == "digits":
        return "28×28 grey, 10 classes, 4,000 train / 1,000 test images (bundled)"
    if spec.kind == "torchvision":
        return (
            f"{spec.arg} from torchvision, native shape; downloaded once into {torchvision_root()}"
        )
    from advstudio.core.errors import ImageLoadError
    from advstudio.core.images import SUPPORTED_SUFFIXES

    root = Path(spec.arg).expanduser()
    files, _, classes = _split_listing(root, spec.kind, "all")
    odd = sum(p.suffix.lower() not in SUPPORTED_SUFFIXES for p in files)
    first = next((p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES), None)
    try:
        shape = describe_shape(tuple(_decode(first, spec.kind).shape)) if first else "no images"
    except (ImageLoadError, OSError):
        shape = "first image unreadable"
    return f"{shape}, {len(classes)} classes, {len(files):,} files" + (
        f" ({odd} not images by name: skipped)" if odd else ""
    )


def geometry(spec: str | DatasetSpec) -> tuple[tuple[int, int, int], int] | None:
    """((C, H, W), class count) of a folder from its listing and first image, as cheaply as
    :func:`summary` (the shape the job will see unless the images differ in size); None for
    the digits and torchvision sets (their shape is known by name) or an unreadable folder."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec)
    if spec.kind in ("digits", "torchvision"):
        return None
    from advstudio.core.errors import ImageLoadError
    from advstudio.core.images import SUPPORTED_SUFFIXES

    try:
        files, _, classes = _split_listing(Path(spec.arg).expanduser(), spec.kind, "all")
        first = next((p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES), None)
        if first is None:
            return None
        return tuple(int(s) for s in _decode(first, spec.kind).shape), len(classes)
    except (ConfigError, ImageLoadError, OSError):
        return None


def folder_classes(spec: str | DatasetSpec) -> list[str]:
    """A folder set's class names from its listing alone (cheap: no image decoded); ``[]``
    for a folder without classes (a flat folder of unlabelled images) or another kind."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec)
    if spec.kind not in ("folder", "imagenet-folder"):
        return []
    try:
        return _split_listing(Path(spec.arg).expanduser(), spec.kind, "all")[2]
    except (ConfigError, OSError):
        return []
