"""In-memory models: an ``nn.Module`` whose class lives only in the user's script or notebook,
registered with its card under a key ``memory:<name>``.

Every job config and the window's model list take such a key as they take ``file:<path>``; a
config may also be given the module itself (``SweepConfig(model=net, card=...)``), which
registers it (:func:`advstudio.core.models.fields.check_model_fields`). The registry lives as
long as the Python session: a recorded run names the key and its card, so a rerun in the same
session finds the same module, and another process says that it cannot.

The module is shared, not copied: a job moves it to its device and puts it in eval mode, as
``model.to(device).eval()`` would (copying a large model for every job would double its
memory).
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from advstudio.core.errors import ConfigError, ModelLoadError
from advstudio.core.models.card import REQUIRED, ModelCard
from advstudio.core.models.classifier import Classifier

PREFIX = "memory:"

_lock = threading.Lock()
_models: dict[str, tuple[nn.Module, ModelCard]] = {}


def as_card(card: ModelCard | dict | None, what: str) -> ModelCard:
    """``card`` as a :class:`ModelCard`; a :class:`ConfigError` naming the missing fields when
    there is none."""
    if card is None:
        raise ConfigError(
            f"{what} has no model card: give its {', '.join(REQUIRED)} (card = "
            '{input_shape = [C, H, W], classes = "cifar10" or a list of names}; mean/std only '
            "if the model expects normalised input)"
        )
    if isinstance(card, dict):
        return ModelCard.from_dict(card, where=f"the card of {what}")
    if not isinstance(card, ModelCard):
        raise ConfigError(f"the card of {what} must be a ModelCard or a dict, not {card!r}")
    return card


def register(module: nn.Module, card: ModelCard | dict | None, name: str | None = None) -> str:
    """Register ``module`` (an ``nn.Module`` taking the card's input) and return its key,
    ``memory:<name>``. ``name`` defaults to the card's name, else the module's class name; an
    explicit ``name`` replaces what was registered under it, a default one gets a suffix
    (``-2``...) when another module holds it. Registering the same module again returns its
    key, with the new card."""
    if not isinstance(module, nn.Module):
        raise ConfigError(f"an in-memory model must be a torch nn.Module, not {type(module)!r}")
    base = name or (card.get("name") if isinstance(card, dict) else getattr(card, "name", ""))
    base = base or type(module).__name__
    card = as_card(card, f"the in-memory model {base!r}")
    with _lock:
        key = PREFIX + base
        if name is None:
            mine = [k for k, (m, _) in _models.items() if m is module]
            if mine:
                key = mine[0]
            else:
                n = 2
                while key in _models:
                    key, n = f"{PREFIX}{base}-{n}", n + 1
        _models[key] = (module, card)
    return key


def unregister(key: str) -> None:
    """Forget ``key`` (nothing if it is not registered)."""
    with _lock:
        _models.pop(key, None)


def registered() -> dict[str, ModelCard]:
    """The registered keys and their cards, in registration order."""
    with _lock:
        return {k: card for k, (_, card) in _models.items()}


def memory_card(key: str) -> ModelCard:
    """The card ``key`` was registered with (:class:`ConfigError` if it is not registered)."""
    with _lock:
        entry = _models.get(key)
    if entry is None:
        raise ConfigError(_unknown(key))
    return entry[1]


def _unknown(key: str) -> str:
    known = ", ".join(registered()) or "none"
    return (
        f"no in-memory model {key!r} in this Python session (registered: {known}); in-memory "
        "models exist only in the session that registered them: register it again "
        "(advstudio.register_model) or save it to a file"
    )


def load_memory(key: str, device: str | torch.device = "cpu") -> Classifier:
    """The registered module as a :class:`Classifier` from its card, eval mode, on ``device``."""
    from advstudio.core.models.user import classifier_from_card

    with _lock:
        entry = _models.get(key)
    if entry is None:
        raise ModelLoadError(_unknown(key))
    module, card = entry
    return classifier_from_card(module, card, key[len(PREFIX) :]).to(device).eval()
