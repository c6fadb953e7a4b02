"""Weights files (torch.save zip or legacy pickle, safetensors) read safely onto the CPU, and
fitted to a network with a message that says exactly what does not fit.

``torch.load`` runs with ``weights_only=True`` and ``map_location="cpu"`` (a file saved on a
GPU opens on a machine without one). Checkpoint wrappers (``state_dict``, ``model_state_dict``,
``model``, ``net``) and the prefixes ``module.`` (DataParallel / DDP) and ``model.`` are
undone before matching.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from advstudio.core.errors import ModelLoadError, UnsafeModelFileError

WRAPPERS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "model.")
SHOWN = 5
"""How many keys / shape mismatches a message lists before "and N more"."""


def read_state(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``state_dict`` / ``legacy`` / ``safetensors`` file (see sniff.py)."""
    if fmt == "safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} is a damaged safetensors file: {str(exc).splitlines()[0]}"
            ) from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch's UnpicklingError explains at length; say it short
            raise UnsafeModelFileError(
                f"{path.name} ({'legacy ' if fmt == 'legacy' else ''}torch.save) holds Python "
                "objects other than tensors; advstudio does not unpickle arbitrary objects (it "
                "could run code). Save the model's state_dict (torch.save(model.state_dict(), "
                "path)) or a safetensors file instead. Details: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
    return unwrap(state, path.name)


def unwrap(state: object, where: str) -> dict[str, torch.Tensor]:
    """The plain name → tensor dict inside a checkpoint, prefixes removed."""
    while isinstance(state, dict):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not state:
        raise ModelLoadError(
            f"{where} does not hold a state_dict (a dict of tensors) but {type(state).__name__}"
        )
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(
            f"{where} holds a dict without tensors (keys: "
            f"{', '.join(list(map(str, state))[:SHOWN])})"
        )
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _dims(shape: torch.Size) -> str:
    return "×".join(map(str, shape)) or "scalar"


def mismatch(net: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into ``net`` ("" when it fits): missing and
    unexpected keys and the first shape mismatches, file against model."""
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    shapes = [
        f"{k}: file {_dims(state[k].shape)}, model {_dims(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
    if shapes:
        parts.append(
            f"{len(shapes)} shape mismatches ({'; '.join(shapes[:SHOWN])}"
            f"{' …' if len(shapes) > SHOWN else ''})"
        )
    return "; ".join(parts)


def fit(net: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``net`` or raise a :class:`ModelLoadError` saying what differs."""
    problem = mismatch(net, state)
    if problem:
        raise ModelLoadError(f"the weights in {what} do not fit: {problem}")
    net.load_state_dict(state, strict=False)
    return net
