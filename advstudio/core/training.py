"""One training loop: :func:`fit` drives any :class:`Trainer` (adversarial classifier, VAT,
detector, GAN, the poisoning lab's victim) and owns what they all need: resuming from a
checkpoint, the checkpoint cadence, the divergence check, the dry run, the set-up logs and
the per-step ``Metrics`` and ``Progress``.

A trainer says what one step is (:meth:`Trainer.compute` then :meth:`Trainer.apply`), what
comes before the first step and after each (:meth:`Trainer.begin`, :meth:`Trainer.after_step`:
evaluations, epoch records, previews), and its state in and out (``state_dict``,
``load_state_dict``: tensors and plain values only, so checkpoints load with
``weights_only=True``). Positions are counted in the plan's ``unit``: steps (GAN, VAT) or
epochs (the classifier), which is what resume messages, the cadence and "nothing to train" use.

Checkpoints are written atomically (:func:`advstudio.core.atomic.atomic_torch_save`), so a
cancel (``gen.close()``) or a crash never leaves a half-written file in place of the last good
one; under ``torchrun`` only rank 0 reads (:func:`~advstudio.core.distributed.from_main`) and,
when the plan says so, writes them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from advstudio.core.distributed import from_main
from advstudio.core.errors import CheckpointError, ConfigError, TrainingDivergedError
from advstudio.core.jobs import Event, Log, Metrics, Progress

State = dict[str, Any]


# ----------------------------------------------------------------------------- data


def check_pixels(x: torch.Tensor, what: str = "data") -> torch.Tensor:
    """Training images ``x`` (N, C, H, W) as float32 on the CPU in [0, 1], validated once at
    the edge: at least one image, float pixels in [0, 1] or uint8 (divided by 255), all
    finite. ``what`` names the data in the :class:`ConfigError` messages. The shape is the
    caller's to check (it knows what its networks take)."""
    x = x.detach().cpu()
    if len(x) == 0:
        raise ConfigError(f"{what} holds no images")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ConfigError(f"{what}: pixels must be float in [0, 1] or uint8, not {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ConfigError(f"{what}: the images hold NaN or infinite pixel values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ConfigError(f"{what}: pixels must be in [0, 1]; these span [{lo:.3g}, {hi:.3g}]")
    return x


# ----------------------------------------------------------------------------- divergence


@dataclass(frozen=True)
class Divergence:
    """When a run has diverged: a loss in ``losses`` is not finite or above ``max_loss``, or a
    gradient norm in ``grads`` is not finite (checked in that order).

    ``before_update``: the trainer checks before its update (the weights stay good), which the
    message says; a GAN's discriminator has already moved when its step's scalars exist.
    ``advice``: the message's last sentence."""

    max_loss: float
    losses: tuple[str, ...] = ("loss",)
    grads: tuple[str, ...] = ("grad_norm",)
    before_update: bool = True
    advice: str = "A lower learning rate usually helps."

    def check(self, values: dict[str, float], step: int, saved: tuple[str, str] = ("", "")) -> None:
        """Raise :class:`TrainingDivergedError` if ``values`` (one step's scalars) went bad at
        ``step``. ``saved``: the last good checkpoint's path and when it was written (e.g.
        ``"epoch 2"``), named in the message ("" = none written)."""
        for name in (*self.losses, *self.grads):
            value = values[name]
            if not math.isfinite(value):
                why = "not finite"
            elif name in self.losses and value > self.max_loss:
                why = f"above the limit max_loss = {self.max_loss:g}"
            else:
                continue
            path, when = saved
            kept = (
                f"the last good checkpoint ({when}) was kept at {path}"
                if path
                else "no checkpoint had been written yet (one is kept every "
                "checkpoint_every steps when checkpoint_path is set)"
            )
            stopped = "stopped before this update" if self.before_update else "stopped"
            raise TrainingDivergedError(
                f"Training diverged at step {step}: {name} is {value:g} ({why}). The run was "
                f"{stopped}; {kept}. {self.advice}",
                quantity=name,
                step=step,
                checkpoint=path,
            )


# ----------------------------------------------------------------------------- checkpoints


def read_checkpoint(
    path: str | os.PathLike,
    *,
    format: str,
    version: int,
    name: str = "checkpoint",
    family: str | None = None,
) -> State:
    """A checkpoint's dict (tensors on the CPU), read with ``weights_only=True`` (no arbitrary
    Python objects are unpickled) and checked to carry ``format`` and ``version``.

    ``name`` and ``family`` (default ``name``) are the nouns of the messages (e.g.
    ``"GAN checkpoint"``): of a damaged file, and of one of another format. Raises
    :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip errors, truncated files...
        raise CheckpointError(
            f"{path.name} is not a readable advstudio {name} (damaged, or "
            f"holding Python objects advstudio will not unpickle): "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != format:
        raise CheckpointError(f"{path.name} is not an advstudio {family or name}")
    if ckpt.get("version") != version:
        raise CheckpointError(
            f"{path.name} has checkpoint version {ckpt.get('version')}; this "
            f"advstudio reads version {version}"
        )
    return ckpt


@dataclass(frozen=True)
class CheckpointFile:
    """Where a run keeps its checkpoint and how it is written and read.

    ``save(path, state)`` writes atomically; ``load(path)`` reads and validates one (raising
    :class:`CheckpointError` for a foreign or mismatched file); ``write``: whether this process
    writes (rank 0 under ``torchrun``)."""

    path: str
    save: Callable[[str, State], None]
    load: Callable[[str], State]
    write: bool = True


# ----------------------------------------------------------------------------- the loop


def keeping_logs(logs: list[str]) -> Callable[[Event], Event]:
    """A :func:`~advstudio.core.jobs.relay` transform that forwards every event and keeps the
    text of each ``Log`` in ``logs`` (a job result's ``logs``)."""

    def keep(event: Event) -> Event:
        if isinstance(event, Log):
            logs.append(event.text)
        return event

    return keep


class Trainer(Protocol):
    """What :func:`fit` drives."""

    @property
    def step(self) -> int:
        """Updates done."""
        ...

    @property
    def position(self) -> int:
        """The plan's units done: steps, or whole epochs."""
        ...

    def begin(self) -> Iterator[Event]:
        """Events before the first step of this call (e.g. the evaluation at step 0)."""
        ...

    def compute(self) -> dict[str, float]:
        """The next step's scalars (the names the plan's :class:`Divergence` checks among
        them), its gradients computed. A trainer that can wait leaves its update to
        :meth:`apply`, so a diverged step changes nothing."""
        ...

    def apply(self) -> None:
        """The update :meth:`compute` prepared (if it did not apply it); ``step`` += 1."""
        ...

    def after_step(self) -> Iterator[Event]:
        """Events after a step's ``Metrics`` and ``Progress``: evaluations, epoch records,
        previews. What it adds to the state is in the checkpoint written next."""
        ...

    def state_dict(self) -> State: ...

    def load_state_dict(self, state: State) -> None: ...


@dataclass(frozen=True)
class Plan:
    """How :func:`fit` runs a trainer.

    ``length``: units to reach (``unit`` "step" or "epoch"); ``total``: steps planned, the
    ``Progress`` total; ``message()``: the ``Progress`` text of the step just done.
    ``checkpoint``: None = no file; ``checkpoint_every``: in units, 0 = at the end only (and
    always at the end); ``checkpoint_first``: write a due checkpoint right after the update,
    before the step's events (for a trainer whose ``after_step`` adds nothing to its state: a
    cancel during those events keeps the step), instead of after ``after_step``.
    ``resume``: continue from the checkpoint when the file exists; ``resume_note(state)``: a
    remark added to the "Resumed from" log. ``header``: the log after the resume logs.
    ``dry_run``: exactly one step, no checkpoint read or written. ``phase``: the steps'
    ``Progress`` phase (an evaluation inside ``after_step`` reports its own)."""

    length: int
    total: int
    message: Callable[[], str]
    unit: str = "step"
    header: str = ""
    checkpoint: CheckpointFile | None = None
    checkpoint_every: int = 0
    checkpoint_first: bool = False
    resume: bool = False
    resume_note: Callable[[State], str] = field(default=lambda state: "")
    divergence: Divergence | None = None
    dry_run: bool = False
    phase: str = "training"


def fit(trainer: Trainer, plan: Plan) -> Generator[Event, None, str]:
    """Train ``trainer`` by ``plan`` (a job fragment: ``yield from fit(...)``).

    Yields the resume and header ``Log``s, ``trainer.begin()``'s events, then per step
    ``Metrics(step, scalars)``, ``Progress(step, total, message, phase)`` and
    ``trainer.after_step()``'s events. Returns the path of the last checkpoint written or
    resumed from ("" if none).

    Raises :class:`TrainingDivergedError` when the plan's divergence check fails (the file on
    disk is then the last good checkpoint) and :class:`CheckpointError` for an unusable one."""
    store = None if plan.dry_run else plan.checkpoint
    unit = plan.unit
    saved = ("", "")
    if plan.resume and store is not None:
        state = from_main(lambda: store.load(store.path) if Path(store.path).is_file() else None)
        if state is None:
            yield Log(f"No checkpoint at {store.path} yet; starting from {unit} 0.")
        else:
            trainer.load_state_dict(state)
            saved = (store.path, f"{unit} {trainer.position}")
            where = "after" if unit == "epoch" else "at"
            yield Log(
                f"Resumed from {store.path} {where} {unit} {trainer.position}"
                f"{plan.resume_note(state)}."
            )
    if plan.header:
        yield Log(plan.header)
    yield from trainer.begin()
    first = trainer.position

    def save_if_due(before: int) -> None:
        nonlocal saved
        position = trainer.position
        if (
            store is None
            or position == before
            or not (
                position >= plan.length
                or (plan.checkpoint_every and position % plan.checkpoint_every == 0)
            )
        ):
            return
        if store.write:
            store.save(store.path, trainer.state_dict())
        saved = (store.path, f"{unit} {position}")

    while trainer.position < plan.length:
        before = trainer.position
        step = trainer.step + 1
        values = trainer.compute()
        if plan.divergence is not None:
            plan.divergence.check(values, step, saved)
        trainer.apply()
        if plan.checkpoint_first:
            save_if_due(before)
        yield Metrics(trainer.step, values)
        yield Progress(trainer.step, plan.total, plan.message(), plan.phase)
        yield from trainer.after_step()
        if not plan.checkpoint_first:
            save_if_due(before)
        if plan.dry_run:
            break
    if trainer.position == first:
        yield Log(
            f"The checkpoint is already at {unit} {trainer.position} of {plan.length}; "
            "nothing to train."
        )
    return saved[0]
