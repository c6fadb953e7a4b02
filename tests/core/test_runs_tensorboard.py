"""TensorBoard export: the event files read back, decoded here independently of the writer."""

from __future__ import annotations

import struct

import pytest

from advstudio.core.runs import RunStore
from advstudio.core.runs.tensorboard import crc32c, export_runs, masked_crc


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def _fields(data: bytes) -> list[tuple[int, object]]:
    """A protocol buffer message as (field number, raw value) pairs."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = struct.unpack("<d", data[i : i + 8])[0], i + 8
        elif wire == 5:
            value, i = struct.unpack("<f", data[i : i + 4])[0], i + 4
        else:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        out.append((number, value))
    return out


def read_events(path) -> list[list[tuple[int, object]]]:
    """Every Event of a TFRecord file, its checksums verified."""
    data, i, events = path.read_bytes(), 0, []
    while i < len(data):
        header = data[i : i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc(header)
        payload = data[i + 12 : i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length : i + 16 + length])[0] == masked_crc(
            payload
        )
        events.append(_fields(payload))
        i += 16 + length
    return events


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C


def test_a_run_exports_as_scalars_and_its_config_as_text(tmp_path):
    store = RunStore.open(tmp_path / "store")
    with store.record("gan", {"steps": 3, "lr": 0.0002}, device="cpu") as rec:
        for step in range(3):
            rec.log_metrics(step, {"d_loss": 0.5 + step, "g_loss": 2.0 - step})
    run_id = store.list_runs()[0].id
    [path] = export_runs(store, [run_id], tmp_path / "tb")
    assert path.parent.name == f"gan-{run_id}" and "tfevents" in path.name

    events = read_events(path)
    assert dict(events[0])[3] == b"brain.Event:2"  # file_version first
    config_value = dict(_fields(dict(events[1])[5]))[1]
    value = dict(_fields(config_value))
    assert value[1] == b"config"
    assert dict(_fields(dict(_fields(value[9]))[1]))[1] == b"text"  # the text plugin's
    assert b"lr = 0.0002" in dict(_fields(value[8]))[8]
    scalars = {}
    for ev in events[2:]:
        fields = dict(ev)
        for _number, raw in _fields(fields[5]):
            v = dict(_fields(raw))
            scalars[(fields[2], v[1].decode())] = v[2]
    assert scalars == pytest.approx(
        {
            (0, "d_loss"): 0.5,
            (0, "g_loss"): 2.0,
            (1, "d_loss"): 1.5,
            (1, "g_loss"): 1.0,
            (2, "d_loss"): 2.5,
            (2, "g_loss"): 0.0,
        }
    )
