"""advstudio: a desktop workbench for adversarial machine learning.

From a script or a notebook::

    import advstudio
    advstudio.open(net, card={"input_shape": [3, 32, 32], "classes": "cifar10"})

Importing the package loads neither Qt nor PyTorch (the window appears before PyTorch loads,
and the core reads ``__version__`` from here): ``open`` and ``register_model`` come from
:mod:`advstudio.api` on first use, as napari's package attaches its viewer lazily.
"""

import importlib

__version__ = "0.1.0"

_LAZY = ("open", "register_model")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module("advstudio.api"), name)
    raise AttributeError(f"module 'advstudio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_LAZY]
