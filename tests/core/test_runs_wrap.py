"""recorded(): a job wrapped so that the run store sees it, cancel and failure included."""

from __future__ import annotations

import pytest

from advstudio.core.evaluate import EvaluateConfig, evaluate
from advstudio.core.jobs import drive
from advstudio.core.runs import RunStore
from advstudio.core.runs.wrap import recorded


@pytest.fixture
def store(tmp_path):
    return RunStore.open(tmp_path / "store")


def test_finished_run_has_metrics_and_summary(store):
    config = EvaluateConfig(limit=100, batch_size=50, device="cpu")
    out = drive(recorded(store, "evaluate", config, evaluate(config)))
    (run,) = store.list_runs()
    assert run.status == "finished" and run.kind == "evaluate"
    assert run.summary["accuracy"] == out.result.accuracy
    assert [m["step"] for m in store.read_metrics(run.id)] == [0, 1]
    # every field but those left at None (a card for a built-in): TOML has no null
    plain = {k: v for k, v in config.__dict__.items() if v is not None}
    assert store.rerun_config(run.id) == ("evaluate", plain)


def test_cancel_marks_cancelled_and_closes_the_job(store):
    closed = []

    def job():
        try:
            from advstudio.core.jobs import Progress

            for i in range(100):
                yield Progress(i, 100)
        finally:
            closed.append(True)

    gen = recorded(store, "evaluate", EvaluateConfig(), job())
    next(gen)
    gen.close()
    assert closed == [True]
    assert store.list_runs()[0].status == "cancelled"


def test_failure_marks_failed_and_propagates(store):
    config = EvaluateConfig(model="file:/nonexistent.pt")
    with pytest.raises(Exception, match="not found"):
        drive(recorded(store, "evaluate", config, evaluate(config)))
    run = store.list_runs()[0]
    assert run.status == "failed" and "not found" in run.error
