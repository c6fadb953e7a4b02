"""The model fields of a job config: ``model`` (a registry key or an in-memory ``nn.Module``)
and ``card`` (the model card's fields, for a ``file:`` or ``memory:`` model).

:func:`check_model_fields` is what every job config that runs a given model calls in its
``__post_init__``, so that a config always holds plain values: a module is registered
(:mod:`advstudio.core.models.memory`) and replaced by its key, a card given as a dict becomes a
:class:`ModelCard`, and an in-memory model's card is filled in from the registry. The card is
what a run records, so a rerun loads the model the same way.
"""

from __future__ import annotations

from typing import Any

from advstudio.core import validate as v
from advstudio.core.errors import ConfigError
from advstudio.core.models.memory import PREFIX, as_card, memory_card, register


def check_model_fields(config: Any, model: str = "model", card: str = "card") -> None:
    """Check and normalise ``config.<model>`` and ``config.<card>`` in place (a frozen
    dataclass's ``__post_init__``)."""
    from torch import nn

    key, given = getattr(config, model), getattr(config, card)
    if isinstance(key, nn.Module):
        given = as_card(given, f"the in-memory model given as {model}")
        key = register(key, given)
    v.text(model, key, empty=False, hint="a registry key, e.g. 'digits-cnn' or 'file:model.pt2'")
    if given is not None:
        given = as_card(given, key)
        if not key.startswith(("file:", PREFIX)):
            raise ConfigError(
                f"{card} describes a file: or memory: model; {key!r} has its own card "
                f"(remove the {card} section)"
            )
    elif key.startswith(PREFIX):
        given = memory_card(key)
    object.__setattr__(config, model, key)
    object.__setattr__(config, card, given)
