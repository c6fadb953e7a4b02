"""A widget's job slot: one job in flight, the latest request queued, one error path."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager


@pytest.fixture
def owner(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    jobs = JobManager()
    yield JobOwner(parent, jobs, QLabel(parent))
    jobs.shutdown()


def _blocked(gate: threading.Event, value: object):
    def job():
        gate.wait(10)
        return value
        yield  # a generator

    return job


def test_a_second_start_is_refused_while_one_is_in_flight(qtbot, owner):
    gate = threading.Event()
    first = owner.start(_blocked(gate, 1), "first", "It failed")
    assert owner.busy and owner.start(_blocked(gate, 2), "second", "It failed") is None
    with qtbot.waitSignal(first.finished, timeout=10_000):
        gate.set()
    assert not owner.busy and owner.worker is first


def test_only_the_latest_request_runs_once_the_job_finishes(qtbot, owner):
    gate = threading.Event()
    first = owner.start(_blocked(gate, 1), "first", "It failed")
    ran = []
    for n in (2, 3, 4):
        owner.request(lambda n=n: ran.append(n))
    assert ran == []
    with qtbot.waitSignal(first.finished, timeout=10_000):
        gate.set()
    assert ran == [4]
    owner.request(lambda: ran.append(5))  # a free slot runs the request at once
    assert ran == [4, 5]


def test_cancel_drops_the_queued_request(qtbot, owner):
    gate = threading.Event()
    first = owner.start(_blocked(gate, 1), "first", "It failed")
    ran = []
    owner.request(lambda: ran.append(1))
    with qtbot.waitSignal(first.finished, timeout=10_000):
        assert owner.cancel()
        gate.set()
    assert ran == [] and not owner.cancel()


@pytest.mark.parametrize(
    "exc, box", [(ConfigError("eps must be in [0, 1]"), False), (ValueError("a bug"), True)]
)
def test_a_failure_reaches_the_status_line_and_a_box_only_when_unexpected(qtbot, owner, exc, box):
    def job():
        raise exc
        yield

    worker = owner.start(job, "failing", "It failed")
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        pass
    assert str(exc) in owner.status.text()
    boxes = [b for b in owner.parent().findChildren(QMessageBox) if b.isVisible()]
    assert [b.windowTitle() for b in boxes] == (["It failed"] if box else [])
