"""Checkpoints that belong to runs: what makes a recorded run resumable.

A training job whose config has ``checkpoint_path`` and ``resume`` fields (GAN/DCGAN, standard and
adversarial training, VAT) and whose path was left empty checkpoints into its own run folder,
``artifacts/checkpoint.pt``. Resuming that run later starts a *new* run that copies the
checkpoint into its own folder first and continues from it, so every run owns its files and
deleting one never breaks another. The config recorded for a run is the one the user asked for
(empty path, no resume), so "rerun" always starts afresh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from advstudio.core.atomic import atomic_copy
from advstudio.core.errors import ConfigError
from advstudio.core.runs.store import CHECKPOINT


def checkpoints(config: Any) -> bool:
    """True for configs that can checkpoint and resume (fields ``checkpoint_path``, ``resume``)."""
    if not dataclasses.is_dataclass(config):
        return False
    names = {f.name for f in dataclasses.fields(config)}
    return {"checkpoint_path", "resume"} <= names


def with_run_checkpoint(config: Any, run_folder: Path, resume_from: Path | None = None) -> Any:
    """``config`` checkpointing into ``run_folder/artifacts/checkpoint.pt`` when it has no path of
    its own; with ``resume_from`` (another run's checkpoint), copied there first and resumed."""
    if not checkpoints(config) or (config.checkpoint_path and resume_from is None):
        if resume_from is not None:
            raise ConfigError(f"a {type(config).__name__} cannot resume from a checkpoint")
        return config
    path = Path(run_folder) / "artifacts" / CHECKPOINT
    if resume_from is None:
        return dataclasses.replace(config, checkpoint_path=str(path))
    resume_from = Path(resume_from)
    if not resume_from.is_file():
        raise ConfigError(
            f"nothing to resume from: {resume_from} does not exist (the run was "
            "stopped before its first checkpoint)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_copy(resume_from, path)
    return dataclasses.replace(config, checkpoint_path=str(path), resume=True)
