"""The user's own model file, in any standard format, wrapped from its card.

The format is sniffed first (:mod:`advstudio.core.models.sniff`), then the file is read the one
safe way for that format: TorchScript with ``torch.jit.load``; a ``.pt2`` after its pickles are
checked (:mod:`~advstudio.core.models.pt2`); ONNX converted or run as a black box
(:mod:`~advstudio.core.models.onnx_net`); state_dict and safetensors weights with
``weights_only=True`` into the card's ``architecture`` (:mod:`~advstudio.core.models.weights`).

The :class:`Classifier` is built from the card and nothing else (:func:`classifier_from_card`).
Without a card, :class:`MissingCardError` names the missing fields and carries a probe of the
net, so the UI can ask and the CLI can say what to write. Two card-less cases keep working:
a state_dict that fits a digit built-in architecture exactly (the built-ins' own card), and a
run store's kept model, whose ``<name>.json`` card says the same things.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advstudio.core.errors import ModelLoadError
from advstudio.core.models import builders, weights
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.card import MissingCardError, ModelCard, card_path, read_card
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.probe import forward_classes, probe
from advstudio.core.models.sniff import FORMAT_NAMES, sniff

DIGITS_CARD = ModelCard((1, 28, 28), "digits", (0.1307,), (0.3081,))
"""The built-ins' card (their training set's mean/std, see resources/models/builtin.json)."""
WEIGHT_FORMATS = ("state_dict", "legacy", "safetensors")


def classifier_from_card(net: nn.Module, card: ModelCard, name: str) -> Classifier:
    """The [0, 1] wrapper of ``net`` as ``card`` describes it (absent mean/std: identity)."""
    c = card.input_shape[0]
    clf = Classifier(
        net,
        card.input_shape,
        card.class_names,
        card.mean if card.mean is not None else (0.0,) * c,
        card.std if card.std is not None else (1.0,) * c,
        name=card.name or name,
        resize_to=card.resize,
        value_range=card.value_range,
    )
    clf.card = card
    return clf


def _run_store_card(path: Path) -> ModelCard | None:
    """The card of a model kept by the run store (``<name>.json``, see core/runs/models.py)."""
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "input_shape" not in meta or "class_names" not in meta:
        return None
    return ModelCard(
        tuple(meta["input_shape"]),
        tuple(meta["class_names"]),
        meta.get("mean"),
        meta.get("std"),
        tuple(meta.get("value_range", (0.0, 1.0))),
        None,
        meta.get("architecture"),
    )


def _missing(path: Path, fmt: str, fields: tuple[str, ...], found: Any) -> MissingCardError:
    where = card_path(path)
    hint = f"; {found.describe()}" if found is not None else ""
    return MissingCardError(
        f"{path.name} ({FORMAT_NAMES[fmt]}) has no model card giving {', '.join(fields)}: "
        f'write {where.name} beside it (input_shape = [C, H, W], classes = "cifar10" or a '
        "list of names, mean/std only if the model expects normalised input, architecture for "
        f"a weights file) or pass the card's fields with the model{hint}",
        fields,
        where,
        found,
    )


def _net_and_shape(path: Path, fmt: str) -> tuple[nn.Module, tuple[int, ...] | None, str]:
    """The network in a graph file (not a weights file), the input shape it declares and what
    to add to its name (an ONNX graph run as a black box says so)."""
    if fmt == "torchscript":
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), None, fmt
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} is not a loadable TorchScript file: {str(exc).splitlines()[0]}"
            ) from exc
    if fmt == "export":
        from advstudio.core.models.pt2 import load_exported

        return (*load_exported(path), "torch.export")
    from advstudio.core.models.onnx_net import load_onnx

    net, shape, note = load_onnx(path)
    return net, shape, "ONNX, black box" if note else "ONNX"


def _digits_fallback(state: dict, architecture: str | None) -> tuple[nn.Module, ModelCard] | None:
    """A card-less state_dict that fits a digit built-in exactly (or the one named), with the
    built-ins' card."""
    for arch in [architecture] if architecture else list(ARCHITECTURES):
        if arch not in ARCHITECTURES:
            return None
        net = ARCHITECTURES[arch]()
        if not weights.mismatch(net, state):
            net.load_state_dict(state)
            return net, replace(DIGITS_CARD, architecture=arch)
    return None


def _weights_net(
    path: Path, fmt: str, card: ModelCard | None, architecture: str | None
) -> tuple[nn.Module, ModelCard]:
    state = weights.read_state(path, fmt)
    arch = (card.architecture if card else None) or architecture
    if card is None:
        found = _digits_fallback(state, arch)
        if found is not None:
            return found
        fields = ("input_shape", "classes") + (() if arch else ("architecture",))
        raise _missing(path, fmt, fields, None)
    if arch is None:
        raise _missing(path, fmt, ("architecture",), None)
    net = builders.build(arch, len(card.class_names), card.input_shape, set(state))
    return weights.fit(net, state, f"{path.name} ({arch})").eval(), card


def _check_against_card(net: nn.Module, card: ModelCard, path: Path) -> None:
    shape = "×".join(map(str, card.input_shape))
    try:
        k = forward_classes(net, card.input_shape)
    except Exception as exc:
        text = str(exc).strip()
        raise ModelLoadError(
            f"{path.name} does not run on the card's input shape {shape} "
            f"({text.splitlines()[0] if text else type(exc).__name__}); "
            f"{probe(net).describe()}. Fix input_shape in "
            f"{card_path(path).name}"
        ) from exc
    if k != len(card.class_names):
        raise ModelLoadError(
            f"{path.name} returns {k} logits but its card names "
            f"{len(card.class_names)} classes; fix classes in "
            f"{card_path(path).name}"
        )


def load_user_model(
    path: str | Path,
    architecture: str | None = None,
    device: str | torch.device = "cpu",
    card: ModelCard | dict | None = None,
) -> Classifier:
    """The user's model file as a :class:`Classifier` in eval mode on ``device``.

    ``card`` (a :class:`ModelCard` or its fields as a dict, e.g. from a job config) wins over
    the card file beside the model; ``architecture`` names a weights file's network when the
    card does not. Raises :class:`MissingCardError` without a card,
    :class:`~advstudio.core.errors.UnsafeModelFileError` for pickled objects and
    :class:`ModelLoadError` saying what did not fit otherwise.
    """
    path = Path(path)
    fmt = sniff(path)
    if fmt == "zip":
        raise ModelLoadError(
            f"{path.name} is a zip archive but not a PyTorch model (no "
            "TorchScript code, torch.export program or torch.save data "
            "inside); open the model file itself"
        )
    if fmt == "unknown":
        raise ModelLoadError(
            f"{path.name} is not a PyTorch model file, nor ONNX or safetensors (its first "
            "bytes match none of them); expected torch.export (.pt2), TorchScript, ONNX, "
            "safetensors or a state_dict saved with torch.save"
        )
    if isinstance(card, dict):
        card = ModelCard.from_dict(card, where=f"the card given for {path.name}")
    card = card or read_card(path) or _run_store_card(path)
    if fmt in WEIGHT_FORMATS:
        net, card = _weights_net(path, fmt, card, architecture)
        kind = card.architecture
    else:
        net, declared, kind = _net_and_shape(path, fmt)
        if card is None:
            raise _missing(path, fmt, ("input_shape", "classes"), probe(net, declared))
    net.eval()
    _check_against_card(net, card, path)
    return classifier_from_card(net, card, f"{path.name} ({kind})").to(device).eval()


def check_card(path: str | Path, card: ModelCard | None = None) -> None:
    """Raise :class:`MissingCardError` (naming the missing fields) unless ``path`` can be loaded
    with a card: ``card``, the card beside it or the run store's. Reads only the first bytes
    when a card is found; without one it tries the load (a digit state_dict needs none, and
    the error of any other file carries a probe of the net)."""
    path = Path(path)
    card = card or read_card(path) or _run_store_card(path)
    if card is None:
        load_user_model(path)
        return
    fmt = sniff(path)
    if fmt in WEIGHT_FORMATS and card.architecture is None:
        raise _missing(path, fmt, ("architecture",), None)
