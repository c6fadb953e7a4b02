"""Untrusted model files: pickles are never run, and each wrong file gets its own message."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest
import torch
from torch import nn

from advstudio.core.errors import ModelLoadError, UnsafeModelFileError
from advstudio.core.models.card import ModelCard, write_card
from advstudio.core.models.user import load_user_model


class _Evil:
    """Unpickling it creates ``marker``: the proof that code ran."""

    marker = None

    def __reduce__(self):
        return (open, (str(_Evil.marker), "w"))


def _exported(path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 2, 2),)), path)


def _rewrite(src, dst, change):
    """Copy the zip ``src`` to ``dst``, each entry's bytes passed through ``change(name, data)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info.filename)))


def _evil_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(_Evil(), buffer)
    return buffer.getvalue()


def _pickled_weight(name, data):
    """Mark the first weight ``use_pickle`` and put a code-running pickle in its place."""
    if name.endswith("model_weights_config.json"):
        config = json.loads(data)
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True
        return json.dumps(config).encode()
    if name.endswith("data/weights/weight_0"):
        return _evil_bytes()
    return data


def _pickled_sample_inputs(name, data):
    return _evil_bytes() if name.endswith("data/sample_inputs/model.pt") else data


@pytest.mark.parametrize("change", [_pickled_weight, _pickled_sample_inputs])
def test_a_crafted_pt2_is_refused_and_its_pickle_never_runs(tmp_path, change):
    _Evil.marker = tmp_path / "pwned"
    _exported(tmp_path / "clean.pt2")
    _rewrite(tmp_path / "clean.pt2", tmp_path / "evil.pt2", change)
    write_card(ModelCard((3, 2, 2), ["a", "b", "c"]), tmp_path / "evil.pt2")
    with pytest.raises(UnsafeModelFileError, match="pickled Python object"):
        load_user_model(tmp_path / "evil.pt2")
    assert not _Evil.marker.exists()
    # the danger is real: torch's own loader runs the pickle
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises after the pickle ran
        torch.export.load(str(tmp_path / "evil.pt2")).module()(torch.rand(2, 3, 2, 2))
    assert _Evil.marker.exists()


def test_the_clean_pt2_loads(tmp_path):
    _exported(tmp_path / "clean.pt2")
    write_card(ModelCard((3, 2, 2), ["a", "b", "c"]), tmp_path / "clean.pt2")
    clf = load_user_model(tmp_path / "clean.pt2")
    clf.train()  # an exported module refuses .train()/.eval(); the wrapper does not
    clf.eval()
    assert clf(torch.rand(5, 3, 2, 2)).shape == (5, 3)  # exported for a batch of 2


@pytest.mark.parametrize("legacy", [False, True])
def test_pickled_objects_in_a_state_dict_are_refused_in_both_torch_save_formats(tmp_path, legacy):
    _Evil.marker = tmp_path / "pwned"
    torch.save({"model": _Evil()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=not legacy)
    message = "legacy torch.save" if legacy else "holds Python"
    with pytest.raises(UnsafeModelFileError, match=message):
        load_user_model(tmp_path / "evil.pt")
    assert not _Evil.marker.exists()


def test_each_wrong_file_gets_its_own_message(tmp_path):
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        zf.writestr("cat.txt", "meow")
    with pytest.raises(ModelLoadError, match="zip archive but not a PyTorch model"):
        load_user_model(tmp_path / "photos.zip")
    (tmp_path / "x.pt").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelLoadError, match="not a PyTorch model file, nor ONNX or safetensors"):
        load_user_model(tmp_path / "x.pt")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage-not-protobuf")
    with pytest.raises(ModelLoadError, match="bad.onnx is not a readable ONNX graph"):
        load_user_model(tmp_path / "bad.onnx")
    (tmp_path / "bad.safetensors").write_bytes((20).to_bytes(8, "little") + b'{"a": 1}' + b" " * 12)
    with pytest.raises(ModelLoadError, match="bad.safetensors is a damaged safetensors file"):
        load_user_model(
            tmp_path / "bad.safetensors",
            card={"input_shape": [3, 2, 2], "classes": "cifar10", "architecture": "resnet18"},
        )
