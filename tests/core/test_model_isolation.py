"""Untrusted model code is tried in a child process: an endless forward is stopped at its time
limit, a native crash kills only the child, a cancel kills it at once, and weights-only files
never start one. Each test that starts a child spends a few seconds importing PyTorch there."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch
from torch import nn

from advstudio.core.errors import ModelCrashError, ModelHangError, ModelLoadError
from advstudio.core.jobs import drive
from advstudio.core.models import isolation
from advstudio.core.models.card import MissingCardError, ModelCard, write_card
from advstudio.core.models.registry import load_model_job
from advstudio.core.models.user import load_user_model
from tests.core.helpers import abort_in_forward
from tests.corpus.make_corpus import endless_torchscript

DIGITS = ModelCard((1, 28, 28), "digits")


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _good_torchscript(path, card=True):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_Linear().eval()), str(path))
    if card:
        write_card(DIGITS, path)
    return path


def _no_children_left() -> bool:
    return multiprocessing.active_children() == []  # also reaps the finished ones


def test_an_endless_forward_is_stopped_at_the_time_limit(tmp_path):
    path = endless_torchscript(tmp_path / "endless.pt")
    job = load_model_job(f"file:{path}", timeout_s=1)
    with pytest.raises(ModelHangError) as caught:
        drive(job)
    assert str(caught.value) == (
        "the model endless.pt did not return from a forward pass within 1 s (an endless "
        "loop?); the process trying it was stopped"
    )
    assert isinstance(caught.value, ModelLoadError)  # shown as any model that does not load
    assert _no_children_left()


def test_a_good_file_loads_through_the_child_and_matches_the_in_process_load(tmp_path):
    path = _good_torchscript(tmp_path / "good.pt")
    events = []
    model = drive(load_model_job(f"file:{path}"), on_event=events.append).result
    direct = load_user_model(path)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), direct(x))
    assert (model.input_shape, model.num_classes) == ((1, 28, 28), 10)
    assert any("separate process" in e.message for e in events)
    assert _no_children_left()


def test_a_missing_card_comes_back_with_its_fields_and_the_childs_probe(tmp_path):
    path = _good_torchscript(tmp_path / "bare.pt", card=False)
    with pytest.raises(MissingCardError) as caught:
        drive(load_model_job(f"file:{path}"))
    with pytest.raises(MissingCardError) as direct:
        load_user_model(path)
    exc = caught.value
    assert str(exc) == str(direct.value)
    assert exc.missing == ("input_shape", "classes") and exc.card_path == direct.value.card_path
    assert exc.probe == direct.value.probe and exc.probe.input_shape == (1, 28, 28)
    assert exc.probe.num_classes == 10


def test_a_native_crash_kills_only_the_child(tmp_path):
    path = _good_torchscript(tmp_path / "crashing.pt")
    job = isolation.load_user_model_job(path, target=abort_in_forward)
    with pytest.raises(ModelCrashError) as caught:
        drive(job)
    assert str(caught.value) == (
        "the model crashing.pt crashed the process that tried it (signal SIGABRT); "
        "it was not loaded"
    )
    assert _no_children_left()


def test_a_pause_does_not_count_and_cancelling_kills_the_child_at_once(tmp_path):
    path = endless_torchscript(tmp_path / "endless.pt")
    job = load_model_job(f"file:{path}", timeout_s=1)
    children = []
    for event in job:  # wait until the child runs the endless forward
        children = children or multiprocessing.active_children()
        if event.message.startswith("Trying a forward pass"):
            break
    assert len(children) == 1 and children[0].is_alive()
    time.sleep(1.5)  # the job paused between two events, longer than the limit
    assert next(job).message.startswith("Trying a forward pass")  # still within its 1 s
    job.close()  # what the worker does on Cancel
    assert not children[0].is_alive() and children[0].exitcode == -9  # SIGKILL
    assert _no_children_left()


def test_weights_only_files_and_built_ins_start_no_child(tmp_path, monkeypatch):
    from advstudio.core.models.architectures import ARCHITECTURES

    def refuse(*args, **kwargs):
        raise AssertionError("a child process was started")

    monkeypatch.setattr(isolation, "probe_in_child", refuse)
    torch.save(ARCHITECTURES["digits-mlp"]().state_dict(), tmp_path / "mlp.pt")
    model = drive(load_model_job(f"file:{tmp_path / 'mlp.pt'}")).result
    assert model.num_classes == 10
    assert drive(load_model_job("digits-cnn")).result.num_classes == 10
    assert not isolation.runs_code(tmp_path / "mlp.pt")
    assert isolation.runs_code(_good_torchscript(tmp_path / "ts.pt"))


def test_the_rebuilt_errors_keep_the_cores_types():
    from advstudio.core.errors import UnsafeModelFileError

    rebuilt = isolation._rebuild({"event": "error", "type": "UnsafeModelFileError", "message": "m"})
    assert type(rebuilt) is UnsafeModelFileError and str(rebuilt) == "m"
    other = isolation._rebuild({"event": "error", "type": "RuntimeError", "message": "boom"})
    assert type(other) is ModelLoadError and str(other) == "RuntimeError: boom"
    missing = isolation._rebuild({"event": "error", "type": "FileNotFoundError", "message": "x"})
    assert type(missing) is FileNotFoundError
