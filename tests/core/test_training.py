"""core.training.fit with a toy trainer: least squares by gradient descent, whose optimum is
known. Resume, checkpoint cadence, divergence, dry run, cancel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from advstudio.core.atomic import atomic_torch_save
from advstudio.core.errors import CheckpointError, ConfigError, TrainingDivergedError
from advstudio.core.jobs import Event, Log, Metrics, Progress, drive
from advstudio.core.training import (
    CheckpointFile,
    Divergence,
    Plan,
    check_pixels,
    fit,
    read_checkpoint,
)

W_TRUE = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)


class LeastSquares:
    """Full-batch gradient descent on ``mean((X w - y)^2)`` with ``y = X W_TRUE`` exactly, so
    the optimum is ``W_TRUE``. ``nan_at``: the step whose loss is NaN (divergence tests)."""

    def __init__(self, lr: float = 0.1, nan_at: int = 0) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 3, generator=g, dtype=torch.float64)
        self.y = self.x @ W_TRUE
        self.w = torch.zeros(3, dtype=torch.float64)
        self.lr, self.nan_at = lr, nan_at
        self.step = 0
        self.grad = torch.zeros(3, dtype=torch.float64)

    @property
    def position(self) -> int:
        return self.step

    def begin(self) -> Iterator[Event]:
        return iter(())

    def compute(self) -> dict[str, float]:
        residual = self.x @ self.w - self.y
        self.grad = 2 * self.x.T @ residual / len(self.x)
        loss = float((residual**2).mean())
        if self.step + 1 == self.nan_at:
            loss = float("nan")
        return {"loss": loss, "grad_norm": float(self.grad.norm())}

    def apply(self) -> None:
        self.w = self.w - self.lr * self.grad
        self.step += 1

    def after_step(self) -> Iterator[Event]:
        return iter(())

    def state_dict(self) -> dict:
        return {"format": "toy", "version": 1, "w": self.w.clone(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.w, self.step = state["w"].clone(), int(state["step"])


def _file(path, saves: list[int] | None = None) -> CheckpointFile:
    def save(where: str, state: dict) -> None:
        if saves is not None:
            saves.append(state["step"])
        atomic_torch_save(state, where)

    return CheckpointFile(
        str(path), save, lambda where: read_checkpoint(where, format="toy", version=1)
    )


def _plan(trainer: LeastSquares, steps: int, **kw) -> Plan:
    return Plan(
        length=steps,
        total=steps,
        message=lambda: f"step {trainer.step}",
        divergence=Divergence(max_loss=1e6),
        **kw,
    )


def _losses(events) -> dict[int, float]:
    return {e.step: e.values["loss"] for e in events if isinstance(e, Metrics)}


def test_fit_reaches_the_known_optimum_with_one_metrics_and_progress_per_step():
    t = LeastSquares()
    out = drive(fit(t, _plan(t, 200, header="toy")), keep_events=True)
    torch.testing.assert_close(t.w, W_TRUE)
    assert out.result == ""  # no checkpoint
    assert out.events[0] == Log("toy")
    assert [e.step for e in out.events if isinstance(e, Metrics)] == list(range(1, 201))
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[-1] == Progress(200, 200, "step 200", "training")


def test_resume_after_a_cancel_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    whole = LeastSquares()
    full = drive(fit(whole, _plan(whole, 10)), keep_events=True)

    ckpt = tmp_path / "toy.ckpt"
    first = LeastSquares()
    job = fit(first, _plan(first, 10, checkpoint=_file(ckpt), checkpoint_every=4))
    for event in job:
        if isinstance(event, Metrics) and event.step == 6:
            break
    job.close()
    assert read_checkpoint(ckpt, format="toy", version=1)["step"] == 4

    second = LeastSquares()
    out = drive(
        fit(second, _plan(second, 10, checkpoint=_file(ckpt), checkpoint_every=4, resume=True)),
        keep_events=True,
    )
    assert out.events[0] == Log(f"Resumed from {ckpt} at step 4.")
    assert out.result == str(ckpt)
    assert torch.equal(second.w, whole.w)
    resumed = _losses(out.events)
    assert sorted(resumed) == list(range(5, 11))
    assert all(resumed[s] == _losses(full.events)[s] for s in resumed)


def test_resume_without_a_file_starts_at_zero_and_a_finished_one_trains_nothing(tmp_path):
    ckpt = tmp_path / "toy.ckpt"
    t = LeastSquares()
    out = drive(fit(t, _plan(t, 3, checkpoint=_file(ckpt), resume=True)), keep_events=True)
    assert out.events[0] == Log(f"No checkpoint at {ckpt} yet; starting from step 0.")
    again = LeastSquares()
    out = drive(fit(again, _plan(again, 3, checkpoint=_file(ckpt), resume=True)), keep_events=True)
    assert not _losses(out.events)
    assert out.events[-1] == Log("The checkpoint is already at step 3 of 3; nothing to train.")


@pytest.mark.parametrize(
    ("every", "steps", "expected"),
    [
        (3, 10, [3, 6, 9, 10]),  # every 3 steps, and always at the end
        (0, 5, [5]),  # 0: at the end only
        (5, 10, [5, 10]),  # the end falls on the cadence: written once
    ],
)
def test_checkpoint_cadence(tmp_path, every, steps, expected):
    saves: list[int] = []
    t = LeastSquares()
    drive(
        fit(
            t, _plan(t, steps, checkpoint=_file(tmp_path / "c.ckpt", saves), checkpoint_every=every)
        )
    )
    assert saves == expected


def test_a_nan_loss_stops_at_its_step_before_the_update_naming_the_last_checkpoint(tmp_path):
    ckpt = tmp_path / "toy.ckpt"
    t = LeastSquares(nan_at=3)
    job = fit(t, _plan(t, 10, checkpoint=_file(ckpt), checkpoint_every=1))
    seen: list[Event] = []
    with pytest.raises(TrainingDivergedError) as info:
        for event in job:
            seen.append(event)
    err = info.value
    assert (err.quantity, err.step, err.checkpoint) == ("loss", 3, str(ckpt))
    assert str(err) == (
        f"Training diverged at step 3: loss is nan (not finite). The run was "
        f"stopped before this update; the last good checkpoint (step 2) was "
        f"kept at {ckpt}. A lower learning rate usually helps."
    )
    assert sorted(_losses(seen)) == [1, 2] and t.step == 2  # step 3 never applied
    assert read_checkpoint(ckpt, format="toy", version=1)["step"] == 2


def test_a_loss_above_the_limit_diverges_and_the_message_follows_the_plan():
    t = LeastSquares(lr=5.0)  # gradient descent overshoots: the loss grows every step
    plan = Plan(
        length=50,
        total=50,
        message=lambda: "",
        divergence=Divergence(max_loss=1e3, before_update=False, advice="Try less."),
    )
    with pytest.raises(
        TrainingDivergedError,
        match=r"step \d+: loss is .* \(above the limit max_loss = 1000\)\. The "
        r"run was stopped; no checkpoint had been written yet \(one "
        r"is kept every checkpoint_every steps when checkpoint_path is "
        r"set\)\. Try less\.$",
    ):
        drive(fit(t, plan))
    assert t.step < 50


def test_dry_run_does_one_step_and_touches_no_file(tmp_path):
    ckpt = tmp_path / "toy.ckpt"
    t = LeastSquares()
    out = drive(
        fit(t, _plan(t, 10, checkpoint=_file(ckpt), resume=True, dry_run=True)), keep_events=True
    )
    assert t.step == 1 and list(_losses(out.events)) == [1]
    assert out.result == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("first", "kept"), [(False, 4), (True, 5)])
def test_cancel_leaves_only_the_last_complete_checkpoint(tmp_path, first, kept):
    """Closed at step 5's Metrics: written before the step's events (``checkpoint_first``)
    step 5 is on disk, written after them step 4; never a partial file."""
    ckpt = tmp_path / "toy.ckpt"
    t = LeastSquares()
    job = fit(t, _plan(t, 10, checkpoint=_file(ckpt), checkpoint_every=1, checkpoint_first=first))
    for event in job:
        if isinstance(event, Metrics) and event.step == 5:
            break
    job.close()
    assert [p.name for p in tmp_path.iterdir()] == ["toy.ckpt"]
    assert read_checkpoint(ckpt, format="toy", version=1)["step"] == kept


def test_read_checkpoint_refuses_foreign_and_damaged_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"format": "else", "version": 1}, other)
    with pytest.raises(CheckpointError, match="other.pt is not an advstudio toy checkpoint"):
        read_checkpoint(other, format="toy", version=1, name="toy checkpoint")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="damaged.pt is not a readable advstudio checkpoint"):
        read_checkpoint(damaged, format="toy", version=1)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "toy", "version": 2}, newer)
    with pytest.raises(
        CheckpointError, match="checkpoint version 2; this advstudio reads version 1"
    ):
        read_checkpoint(newer, format="toy", version=1)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(0, 1, 4, 4), "data holds no images"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.int32), "pixels must be float in \\[0, 1\\] or uint8"),
        (torch.full((2, 1, 4, 4), float("nan")), "NaN or infinite"),
        (torch.full((2, 1, 4, 4), 1.5), r"pixels must be in \[0, 1\]; these span \[1.5, 1.5\]"),
    ],
)
def test_check_pixels_refuses_bad_images(x, message):
    with pytest.raises(ConfigError, match=message):
        check_pixels(x)


def test_check_pixels_scales_uint8():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    assert torch.equal(check_pixels(x), torch.tensor([0.0, 1.0]).view(2, 1, 1, 1))
