"""What ``import advstudio`` offers a script or a notebook: ``advstudio.open`` and
``advstudio.register_model`` (the package exposes them lazily, see ``advstudio/__init__.py``)."""

from __future__ import annotations

from typing import Any


def open(model: Any = None, card: Any = None, data: str | None = None, **options: Any) -> Any:
    """Open the window on ``model`` (an in-memory ``nn.Module`` with its ``card``, or a registry
    key) and ``data`` (a data set for the Attack tab); returns the window. See
    :func:`advstudio.app.open_window` for ``name``, ``image``, ``block`` and when the call
    returns (at once under IPython's ``%gui qt`` or another running Qt app).

    >>> import advstudio
    >>> advstudio.open(net, card={"input_shape": [3, 32, 32], "classes": "cifar10"})
    """
    from advstudio.app import open_window

    return open_window(model, card, data, **options)


def register_model(module: Any, card: Any, name: str | None = None) -> str:
    """Register an in-memory ``nn.Module`` with its card; returns its key ``memory:<name>``,
    which every job config (``model = key``, or the module itself) and the window's model list
    take. See :mod:`advstudio.core.models.memory`."""
    from advstudio.core.models.memory import register

    return register(module, card, name)
