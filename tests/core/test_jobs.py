"""The job protocol: generators, events, cancel by close(), throttling, evaluation job."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.data import load_digits
from advstudio.core.devices import available_devices, pick_device
from advstudio.core.errors import ConfigError, DeviceError, explain
from advstudio.core.evaluate import EvaluateConfig, evaluate
from advstudio.core.jobs import Metrics, Progress, Throttle, drive
from advstudio.core.models.registry import load_builtin


def test_drive_returns_the_result_and_events():
    def job():
        yield Progress(0, 2)
        yield Metrics(0, {"x": 1.0})
        yield Progress(2, 2)
        return "done"

    out = drive(job(), keep_events=True)
    assert out.result == "done" and len(out.events) == 3


def test_close_runs_the_jobs_cleanup():
    cleaned = []

    def job():
        try:
            for i in range(100):
                yield Progress(i, 100)
        finally:
            cleaned.append(True)

    gen = job()
    next(gen)
    gen.close()
    assert cleaned == [True]


def test_throttle_by_wall_time():
    now = [0.0]
    t = Throttle(rate=10, clock=lambda: now[0])
    assert t.ready()
    now[0] = 0.05
    assert not t.ready()
    now[0] = 0.1
    assert t.ready()


def test_evaluate_matches_an_independent_count():
    x, y = load_digits("test")
    clf = load_builtin("digits-cnn")
    with torch.no_grad():
        correct = int((clf(x[:300]).argmax(1) == y[:300]).sum())
    out = drive(evaluate(EvaluateConfig(limit=300, batch_size=64, device="cpu")), keep_events=True)
    assert out.result.accuracy == correct / 300
    assert out.result.n == 300
    assert sum(map(sum, out.result.confusion)) == 300
    assert [e for e in out.events if isinstance(e, Progress)][-1].done == 300


def test_evaluate_dry_run_is_one_batch():
    out = drive(evaluate(EvaluateConfig(batch_size=8, dry_run=True, device="cpu")))
    assert out.result.n == 8


@pytest.mark.parametrize(
    "values, match",
    [
        ({"batch_size": 0}, r"batch_size must be a whole number >= 1, not 0"),
        ({"batch_size": True}, r"batch_size must be a whole number >= 1, not True"),
        ({"limit": -1}, r"limit must be a whole number >= 0, not -1 \(0 = all\)"),
        ({"device": "tpu"}, r"device must be one of auto, cpu, cuda, cuda:N, mps, not 'tpu'"),
    ],
)
def test_evaluate_bad_config_is_refused_when_built(values, match):
    with pytest.raises(ConfigError, match=match):
        EvaluateConfig(**values)


def test_devices():
    assert available_devices()[-1] == "cpu"
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == available_devices()[0].split(":")[0]
    with pytest.raises(DeviceError, match="available: auto"):
        pick_device("tpu")


def test_plain_cuda_means_the_first_gpu_however_many_there_are(monkeypatch):
    import advstudio.core.devices as devices

    monkeypatch.setattr(devices, "available_devices", lambda: ["cuda:0", "cuda:1", "cpu"])
    assert devices.pick_device("cuda") == torch.device("cuda:0")
    assert devices.pick_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(devices, "available_devices", lambda: ["cuda", "cpu"])
    assert devices.pick_device("cuda:0") == torch.device("cuda")


def test_explain_gives_an_oom_hint():
    class OutOfMemoryError(RuntimeError):
        pass

    assert "smaller batch" in explain(OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert explain(ValueError("bad")) == "ValueError: bad"
    assert explain(ConfigError("batch_size must be at least 1")) == "batch_size must be at least 1"


def _counting(n: int, closed: list[bool]):
    try:
        for i in range(n):
            yield Progress(i, n, f"step {i}")
        return n * 10
    finally:
        closed.append(True)


def test_relay_forwards_events_and_returns_the_result():
    from advstudio.core.jobs import relay

    def outer():
        result = yield from relay(_counting(3, []))
        return result + 1

    out = drive(outer(), keep_events=True)
    assert out.result == 31
    assert [e.done for e in out.events] == [0, 1, 2]


def test_relay_transforms_drops_and_closes_the_inner_job():
    from advstudio.core.jobs import relay

    closed: list[bool] = []
    outer = relay(
        _counting(5, closed), lambda e: None if e.done % 2 else Progress(e.done * 2, 10, "outer")
    )
    assert next(outer) == Progress(0, 10, "outer")
    assert next(outer) == Progress(4, 10, "outer")  # step 1 dropped
    assert closed == []
    outer.close()  # cancel: the inner job's finally runs
    assert closed == [True]
