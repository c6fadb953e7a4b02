"""Trained weights kept as files beside a run's JSON: what lets a headless training be opened,
attacked and compared in the app.

A job's result may hold weights: a classifier training's ``state_dict``, a GAN's
``generator_state``, a detector's ``detector_state``, a poisoning run's victim in
``train.state_dict``. :func:`keep_models` finds them in any result (dataclasses and mappings,
however nested), so no trainer has to know about the run store. Each becomes a plain state_dict
file ``<name>.pt`` (loadable with ``torch.load(path, weights_only=True)``, or as the app's user
model ``file:<path>`` with the card's architecture) and a card ``<name>.json`` saying which
network it fits; the JSON result names the file where the weights were, so it holds no tensors.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from advstudio.core.atomic import atomic_torch_save, atomic_write_bytes
from advstudio.core.runs.files import atomic_write_json, is_state_dict, plain


def _model_name(field: str) -> str:
    """``state_dict`` -> ``model``, ``generator_state`` -> ``generator``, else the field name."""
    if field == "state_dict":
        return "model"
    return field.removesuffix("_state") or "model"


def _found(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """``(field path, owner, state_dict)`` for every state_dict among ``value``'s fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping) and not is_state_dict(value):
        items = [(str(k), v) for k, v in value.items()]
    else:
        return
    for name, child in items:
        if is_state_dict(child) or _is_array(child):
            yield (*path, name), value, child
        else:
            yield from _found(child, (*path, name))


def _is_array(value: Any) -> bool:
    """A tensor or numpy array that is not a scalar (an image batch a result keeps for its
    views): it is saved beside the weights, without a card (a tensor as ``.pt``, an array as
    ``.npy``), so ``result.json`` names a file, never ``"<Tensor>"`` or ``"<ndarray>"``."""
    module = type(value).__module__
    return module.startswith(("torch", "numpy")) and getattr(value, "ndim", 0) > 0


def model_card(owner: Any, field: str, weights: str) -> dict[str, Any]:
    """How to use the weights in ``weights``: the network's architecture and the config that
    built it; for a classifier also its input shape (C, H, W), class names and the mean/std
    it normalises [0, 1] pixels with (read from the result's ``classifier()``)."""
    card: dict[str, Any] = {"format": "state_dict", "weights": weights, "field": field}
    config = getattr(owner, "config", None)
    if dataclasses.is_dataclass(config):
        card["architecture"] = getattr(config, "arch", None) or _model_name(field.split(".")[-1])
        card["config"] = plain(config)
    build = getattr(owner, "classifier", None)
    if field.endswith("state_dict") and callable(build):
        classifier = build()
        card.update(
            role="classifier",
            input_shape=list(classifier.input_shape),
            class_names=list(classifier.class_names),
            value_range=[0.0, 1.0],
            mean=classifier.mean.flatten().tolist(),
            std=classifier.std.flatten().tolist(),
        )
    return card


def _unique(name: str, path: tuple[str, ...], taken: set[str]) -> str:
    """``name``, else prefixed with the fields that lead to it, else numbered."""
    candidates = [name, "_".join((*path[:-1], name))]
    candidates += [f"{name}_{i}" for i in range(2, len(taken) + 3)]
    return next(c for c in candidates if c not in taken)


def keep_models(result: Any, folder: Path, prefix: str = "") -> Any:
    """``plain(result)``, each state_dict in it saved as ``folder/<name>.pt`` with its card
    ``folder/<name>.json`` and replaced by ``prefix + "<name>.pt"`` (the file's name as seen
    from wherever the JSON is written); a bare tensor likewise, without a card."""
    files: dict[int, str] = {}
    names: set[str] = set()
    # the shallowest first: a result's own weights get the plain name (model.pt)
    for path, owner, state in sorted(_found(result), key=lambda found: len(found[0])):
        if id(state) in files:  # one state_dict in two places: one file
            continue
        name = _unique(_model_name(path[-1]), path, names)
        names.add(name)
        if isinstance(state, np.ndarray):
            buffer = io.BytesIO()
            np.save(buffer, state, allow_pickle=False)
            atomic_write_bytes(folder / f"{name}.npy", buffer.getvalue())
            files[id(state)] = f"{prefix}{name}.npy"
            continue
        if _is_array(state):
            atomic_torch_save(state.detach().cpu(), folder / f"{name}.pt")
        else:
            atomic_torch_save(
                {k: v.detach().cpu() for k, v in state.items()}, folder / f"{name}.pt"
            )
            card = model_card(owner, ".".join(path), f"{name}.pt")
            atomic_write_json(folder / f"{name}.json", card)
        files[id(state)] = f"{prefix}{name}.pt"
    return plain(result, files)
