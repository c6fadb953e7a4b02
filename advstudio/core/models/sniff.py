"""What kind of model file this is, from its bytes, before anything is loaded.

Loading the wrong way is how untrusted files run code or fail with a library's long text, so
the format is decided first, by magic bytes and (for zip archives) by the archive's entries:

- ``torchscript``: a zip with ``code/`` and ``constants.pkl`` (``torch.jit.save``);
- ``export``: a zip with ``archive_format`` / ``models/*.json`` (``torch.export.save``, .pt2);
- ``state_dict``: a zip with ``data.pkl`` only (``torch.save``, the default since torch 1.6);
- ``legacy``: the pre-1.6 ``torch.save`` pickle (``_use_new_zipfile_serialization=False``);
- ``safetensors``: an 8-byte little-endian header length, then a JSON header;
- ``onnx``: a protobuf ``ModelProto`` (field 1, ``ir_version``, comes first: byte 0x08);
- ``zip``: some other zip archive; ``unknown``: anything else.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from advstudio.core.errors import ModelLoadError

FORMATS = ("torchscript", "export", "state_dict", "legacy", "safetensors", "onnx", "zip", "unknown")
LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
"""A legacy ``torch.save`` file starts with a protocol-2 pickle of the number
0x1950a86a20f9469cfc6c (torch's serialization magic)."""

FORMAT_NAMES = {
    "torchscript": "a TorchScript archive",
    "export": "a torch.export archive (.pt2)",
    "state_dict": "a torch.save file",
    "legacy": "a legacy (pre-1.6) torch.save file",
    "safetensors": "a safetensors file",
    "onnx": "an ONNX graph",
    "zip": "a zip archive",
    "unknown": "a file of unknown format",
}


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(
            f"{path.name} looks like a zip archive but is damaged ({exc}); save the model again"
        ) from exc
    tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "archive_format" in tails or any(
        t.startswith("models/") and t.endswith(".json") for t in tails
    ):
        return "export"
    if "data.pkl" in tails:
        return "state_dict"
    return "zip"


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def sniff(path: str | Path) -> str:
    """One of :data:`FORMATS`. Raises :class:`ModelLoadError` for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"model file is empty: {path}")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if head.startswith(LEGACY_MAGIC):
        return "legacy"
    if _is_safetensors(head, size):
        return "safetensors"
    if head[:1] == b"\x08":
        return "onnx"
    return "unknown"
