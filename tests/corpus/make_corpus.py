"""Generate the corpus of bad (and awkward-but-valid) inputs the hardening tests feed to the
image loader, the window's drop target and ``advstudio-run``: nothing binary is committed.

Run alone to look at the files: ``python -m tests.corpus.make_corpus OUT_DIR``. The tests call
:func:`make_images`, :func:`make_configs` and :func:`endless_torchscript` into their
``tmp_path``.

Every entry names the error kind expected (a class name of :mod:`advstudio.core.errors`), or
``None`` for an input that must load (an EXIF-rotated photo, a unicode path). Large images are
large only in their header: a PNG's IHDR says 6,000 × 6,000 but no pixel data follows, so
building the corpus allocates nothing and the loader must refuse before decoding.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Entry:
    path: Path
    expected: str | None  # error class name, or None: must load


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def header_only_png(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` (colour type 2 RGB, 6 RGBA), no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _float_tiff(value: float) -> bytes:
    arr = np.full((8, 8), 0.5, dtype=np.float32)
    arr[2, 3] = value
    buf = io.BytesIO()
    Image.fromarray(arr, mode="F").save(buf, format="TIFF")
    return buf.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A 40 × 20 JPEG (wide as stored) whose EXIF orientation 6 says: turn 90° to show it, so it
    must load 20 wide and 40 high."""
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def make_images(folder: Path) -> dict[str, Entry]:
    """Write the image corpus into ``folder``; name -> entry."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _png(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))
    broken = bytearray(good)
    start = broken.index(b"IDAT") + 8
    broken[start : start + 40] = bytes(40)  # zeros in the compressed stream: a broken zlib stream
    files: dict[str, tuple[bytes, str | None]] = {
        "empty.png": (b"", "EmptyImageError"),
        "text.png": (b"these are not pixels\n" * 5, "NotAnImageError"),
        "truncated.png": (good[: len(good) // 2], "CorruptImageError"),
        "corrupt.png": (bytes(broken), "CorruptImageError"),
        "bomb.png": (header_only_png(20_000, 20_000), "ImageTooLargeError"),
        "huge.png": (header_only_png(7_000, 6_000), "ImageTooLargeError"),
        "huge_rgba.png": (header_only_png(6_000, 6_000, colour_type=6), "ImageTooLargeError"),
        "nan.tif": (_float_tiff(float("nan")), "NonFiniteImageError"),
        "inf.tif": (_float_tiff(float("inf")), "NonFiniteImageError"),
        "rotated.jpg": (exif_rotated_jpeg(), None),
        "数字 ✓ é.png": (good, None),
    }
    entries = {}
    for name, (data, expected) in files.items():
        (folder / name).write_bytes(data)
        entries[name] = Entry(folder / name, expected)
    (folder / "folder.png").mkdir(exist_ok=True)
    entries["folder.png"] = Entry(folder / "folder.png", "NotAnImageError")
    if hasattr(os, "mkfifo"):  # a FIFO: opening it for reading would block forever
        os.mkfifo(folder / "fifo.png")
        entries["fifo.png"] = Entry(folder / "fifo.png", "UnreadableImageError")
    if sys.platform != "win32":
        os.symlink(folder / "loop_b.png", folder / "loop_a.png")
        os.symlink(folder / "loop_a.png", folder / "loop_b.png")
        entries["loop_a.png"] = Entry(folder / "loop_a.png", "UnreadableImageError")
        os.symlink(folder / "gone.png", folder / "dangling.png")
        entries["dangling.png"] = Entry(folder / "dangling.png", "UnreadableImageError")
    entries["vanished.png"] = Entry(folder / "vanished.png", "ImageNotFoundError")
    return entries


# name -> (file name, bytes). Every one must make advstudio-run exit 2 with one line.
_SWEEP = 'kind = "sweep"\nn_images = 8\n'
CONFIGS: dict[str, tuple[str, bytes]] = {
    "kind is a list": ("c.toml", b'kind = ["sweep"]\n'),
    "kind is a number": ("c.json", b'{"kind": 3}'),
    "kind is a table": ("c.toml", b"[kind]\nname = 1\n"),
    "no kind": ("c.toml", b'model = "digits-cnn"\n'),
    "empty file": ("c.toml", b""),
    "not UTF-8": ("c.toml", b'kind = "sweep"\nmodel = "\xff\xfe caf\xe9"\n'),
    "UTF-16": ("c.json", '{"kind": "sweep"}'.encode("utf-16")),
    "binary": ("c.toml", bytes(range(256))),
    "YAML": ("c.yaml", b"kind: sweep\nmodel: digits-cnn\n"),
    "no suffix": ("config", b'kind = "sweep"\n'),
    "TOML syntax": ("c.toml", b"kind = = 1\n"),
    "JSON syntax": ("c.json", b'{"kind": "sweep",}'),
    "JSON list": ("c.json", b'["sweep"]'),
    "attacks as a string": ("c.toml", _SWEEP.encode() + b'attacks = "fgsm"\n'),
    "attacks of numbers": ("c.toml", _SWEEP.encode() + b"attacks = [1, 2]\n"),
    "attacks as a table": ("c.toml", _SWEEP.encode() + b"[attacks]\nfgsm = 1\n"),
    "epsilons of strings": ("c.toml", _SWEEP.encode() + b'epsilons = ["big"]\n'),
    "nested epsilons": ("c.toml", _SWEEP.encode() + b"epsilons = [[0.1]]\n"),
    "eps out of range": ("c.toml", _SWEEP.encode() + b"epsilons = [2.0]\n"),
    "eps not finite": ("c.json", b'{"kind": "sweep", "epsilons": [NaN]}'),
    "steps a bool": ("c.toml", _SWEEP.encode() + b"batch_size = true\n"),
    "seed a float": ("c.toml", _SWEEP.encode() + b"seed = 1.5\n"),
    "model a number": ("c.toml", _SWEEP.encode() + b"model = 3\n"),
    "model unknown": ("c.toml", _SWEEP.encode() + b'model = "no-such-model"\n'),
    "device unknown": ("c.toml", _SWEEP.encode() + b'device = "tpu"\n'),
    "device absent": ("c.toml", _SWEEP.encode() + b'device = "cuda:99"\n'),
    "unknown key": ("c.toml", _SWEEP.encode() + b"epsilonz = [0.1]\n"),
    "huge number": ("c.json", b'{"kind": "sweep", "n_images": 1e400}'),
    "evaluate of wrong types": ("c.json", b'{"kind": "evaluate", "limit": "all"}'),
    "gan of wrong types": ("c.toml", b'kind = "gan"\nepochs = "many"\n'),
    "train of wrong types": ("c.toml", b'kind = "train"\nlr = [0.1]\n'),
}


def endless_torchscript(path: Path) -> Path:
    """A TorchScript digit model, with its card, whose forward never returns: its loop's
    condition holds for every image in [0, 1] (a ``ModelHangError`` when probed)."""
    import torch
    from torch import nn

    from advstudio.core.models.card import ModelCard, write_card

    class Endless(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = 0
            while bool(x.sum() > -1.0):  # never false for pixels >= 0
                n += 1
            return x.flatten(1)[:, :10] + n

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(Endless()), str(path))
    write_card(ModelCard((1, 28, 28), "digits"), path)
    return path


def make_configs(folder: Path) -> dict[str, Path]:
    """Write the bad configs into ``folder`` (one sub-folder each); name -> path. A folder and a
    FIFO named like configs are added too."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (name, (file_name, data)) in enumerate(CONFIGS.items()):
        (folder / str(i)).mkdir(exist_ok=True)
        paths[name] = folder / str(i) / file_name
        paths[name].write_bytes(data)
    (folder / "dir.toml").mkdir(exist_ok=True)
    paths["a folder"] = folder / "dir.toml"
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.toml")
        paths["a FIFO"] = folder / "fifo.toml"
    paths["missing"] = folder / "missing.toml"
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    for entry in make_images(out / "images").values():
        print(f"{entry.expected or 'loads':24} {entry.path}")
    for name, path in make_configs(out / "configs").items():
        print(f"{'exit 2':24} {path}  ({name})")
    print(f"{'ModelHangError':24} {endless_torchscript(out / 'models' / 'endless.pt')}")
