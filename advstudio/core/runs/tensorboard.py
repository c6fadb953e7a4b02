"""Export recorded runs as TensorBoard event files (``tensorboard --logdir <folder>``).

Why written by hand and not with ``torch.utils.tensorboard``: that needs the ``tensorboard``
package, which pulls in grpcio, protobuf, absl-py, markdown, werkzeug and a data server (tens
of megabytes, for a file format of a few lines); ``tensorboardX`` still needs protobuf. The
format is small and frozen: a TFRecord stream (length, masked CRC-32C of the length, payload,
masked CRC-32C of the payload) of ``tensorflow.Event`` protocol buffers; we write three kinds:
the file version, one scalar per metric per step, and the config as a text summary.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE_VERSION = b"brain.Event:2"
_DT_STRING = 7  # tensorflow.DataType


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(payload: bytes) -> bytes:
    """One TFRecord: the framing TensorBoard reads event files with."""
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", masked_crc(length))
        + payload
        + struct.pack("<I", masked_crc(payload))
    )


# -- protocol buffer encoding (only what an Event needs) --------------------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event(
    wall_time: float, step: int, *, file_version: bytes | None = None, values: Iterable[bytes] = ()
) -> bytes:
    """A serialised ``tensorflow.Event``; ``values`` are serialised ``Summary.Value``s."""
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
    if file_version is not None:
        out += _field(3, file_version)
    summary = b"".join(_field(1, v) for v in values)
    if summary:
        out += _field(5, summary)
    return out


def scalar_value(tag: str, value: float) -> bytes:
    return _field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)


def text_value(tag: str, text: str) -> bytes:
    """A text summary: a string tensor tagged for TensorBoard's text plugin."""
    metadata = _field(1, _field(1, b"text"))  # SummaryMetadata.plugin_data.plugin_name
    tensor = _varint(1 << 3) + _varint(_DT_STRING) + _field(2, b"") + _field(8, text.encode())
    return _field(1, tag.encode()) + _field(9, metadata) + _field(8, tensor)


# -- runs -------------------------------------------------------------------------------------
def run_events(config: dict[str, Any], rows: list[dict[str, Any]], start: float) -> bytes:
    """The event file of one run: its config as text at step 0, then every numeric metric."""
    config_text = "\n".join(f"    {k} = {json.dumps(v)}" for k, v in config.items())
    out = [
        record(event(start, 0, file_version=FILE_VERSION)),
        record(event(start, 0, values=[text_value("config", config_text)])),
    ]
    for row in rows:
        values = [
            scalar_value(k, float(v))
            for k, v in row.items()
            if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if values:
            wall = float(row["time"]) if isinstance(row.get("time"), (int, float)) else start
            out.append(record(event(wall, int(row.get("step", 0)), values=values)))
    return b"".join(out)


def export_runs(store, run_ids: Iterable[str], dest: Path | str) -> list[Path]:
    """One sub-folder per run under ``dest`` (TensorBoard names each curve after it)."""
    written = []
    for run_id in run_ids:
        info = store.get(run_id)
        folder = Path(dest) / f"{info.kind}-{run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        start = info.created.timestamp()
        path = folder / f"events.out.tfevents.{int(start)}.{socket.gethostname()}.advstudio"
        path.write_bytes(
            run_events(store.rerun_config(run_id)[1], store.read_metrics(run_id), start)
        )
        written.append(path)
    return written
