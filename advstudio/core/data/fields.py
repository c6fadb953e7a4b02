"""The data fields of the jobs that run a given model on a data set (ε sweep, robust
accuracy, evaluate), and the images they name: any set of :mod:`advstudio.core.data.sets`,
fitted to the model only as the config's ``fit`` asks. The model is duck-typed (its
``num_classes``, ``input_shape`` and ``class_names``), so this stays below the models package.

Every such config has the same three fields, checked by :func:`check_fields`:
``dataset`` (default ``"digits"``), ``split`` (default ``"test"``) and ``fit`` (default
``"none"``: images that do not match the model's input shape are refused, not resized).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advstudio.core.data.fit import fit_to_model
from advstudio.core.data.sets import load_dataset
from advstudio.core.data.spec import check_dataset, check_fit, check_split
from advstudio.core.errors import ConfigError


def check_fields(config: object) -> None:
    """``dataset``, ``split`` and ``fit`` of ``config``, in the validate dialect."""
    check_dataset(config.dataset)
    check_split(config.split)
    check_fit(config.fit)


@dataclass
class JobImages:
    """``x`` (N, C, H, W) in [0, 1] at the model's input shape, ``y`` int64 (N,); ``lines``:
    what the job should log (the set, what was skipped, what was fitted)."""

    x: torch.Tensor
    y: torch.Tensor
    lines: list[str]


def job_images(
    dataset: str, split: str, n: int, seed: int, model: torch.nn.Module, fit: str = "none"
) -> JobImages:
    """``n`` images of ``dataset``'s ``split`` (a random subset drawn with ``seed`` when the
    split is larger; more than it holds is a :class:`ConfigError`), fitted to ``model.input_shape``
    under ``fit``.

    Label ``i`` is taken to be the model's output ``i``; a set with more classes than the model
    has outputs is refused, and differing class names are said in the log.
    """
    data = load_dataset(dataset, split, limit=n, seed=seed)
    outputs = int(model.num_classes)
    if len(data.class_names) > outputs:
        raise ConfigError(
            f"{dataset} has {len(data.class_names)} classes but the model has "
            f"{outputs} outputs; choose a data set of the model's classes"
        )
    if len(data.x) < n:
        raise ConfigError(
            f"n_images must be at most {len(data.x)} (the readable images of "
            f"{data.source}, {split} split), not {n}"
        )
    lines = [f"data: {data.source} ({split}), {data.description}"]
    if data.skipped:
        lines.append(data.skipped_line())
    names = list(getattr(model, "class_names", []))
    if names and names[: len(data.class_names)] != data.class_names:
        lines.append(
            "the data set's class names differ from the model's: label i is taken as "
            "the model's output i"
        )
    x, note = fit_to_model(data.x, tuple(model.input_shape), fit)
    if note:
        lines.append(f"fitted to the model: {note}")
    return JobImages(x, data.y, lines)
