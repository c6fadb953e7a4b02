"""One validation dialect for every job config: checks that return the value or raise
:class:`~advstudio.core.errors.ConfigError` with one message shape,
``"<name> must be <what is allowed>, not <value>"`` (plus a hint in brackets where it helps).

Configs are checked once, at the edge (their ``__post_init__``); the functions that receive a
built config trust it. Booleans are refused where numbers are meant (``steps = true`` in a
TOML file is a mistake, not 1), and numbers must be finite unless a check says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from advstudio.core.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device names a config may give (``cuda:N`` too); ``auto`` picks CUDA > MPS > CPU."""


def fail(name: str, what: str, value: Any, hint: str = "") -> None:
    """Raise the dialect's message: ``name must be what, not value (hint)``."""
    tail = f" ({hint})" if hint else ""
    raise ConfigError(f"{name} must be {what}, not {value!r}{tail}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, above: float | None, below: float | None) -> str:
    """The allowed range in words: ``> 0``, ``>= 1``, ``in [0, 1]``, ``in (0, 1]``..."""
    lo = low if low is not None else above
    hi = high if high is not None else below
    if lo is not None and hi is not None:
        left = "[" if low is not None else "("
        right = "]" if high is not None else ")"
        return f"in {left}{lo:g}, {hi:g}{right}"
    if lo is not None:
        return f">= {lo:g}" if low is not None else f"> {lo:g}"
    if hi is not None:
        return f"<= {hi:g}" if high is not None else f"< {hi:g}"
    return ""


def _in_range(
    value: float, low: float | None, high: float | None, above: float | None, below: float | None
) -> bool:
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (above is None or value > above)
        and (below is None or value < below)
    )


def whole(
    name: str, value: Any, low: int | None = None, high: int | None = None, *, hint: str = ""
) -> int:
    """A whole number (not a bool, not 2.0) in ``[low, high]`` (either bound optional)."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not _in_range(value, low, high, None, None)
    ):
        if low is not None and high is not None:
            fail(name, f"a whole number from {low} to {high}", value, hint)
        fail(name, f"a whole number {_bounds(low, high, None, None)}".rstrip(), value, hint)
    return value


def number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    hint: str = "",
) -> float:
    """A finite number (int or float, not a bool) within the bounds: ``low`` / ``high``
    inclusive, ``above`` / ``below`` exclusive. Returns it as a float."""
    if (
        not _is_number(value)
        or not math.isfinite(value)
        or not _in_range(value, low, high, above, below)
    ):
        bounds = _bounds(low, high, above, below)
        what = bounds if bounds.startswith("in") else f"a finite number {bounds}".rstrip()
        fail(name, what, value, hint)
    return float(value)


def flag(name: str, value: Any) -> bool:
    """A bool: ``true`` or ``false``, not 0 / 1 or a string."""
    if not isinstance(value, bool):
        fail(name, "true or false", value)
    return value


def choice(name: str, value: Any, allowed: Iterable[str], hint: str = "") -> str:
    """One of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        fail(name, f"one of {', '.join(allowed)}", value, hint)
    return value


def choices(name: str, values: Any, allowed: Iterable[str], *, at_least: int = 1) -> tuple:
    """A list (or tuple) of distinct names from ``allowed``, at least ``at_least`` of them.
    A lone string is refused (``attacks = "fgsm"`` means ``["fgsm"]``: say so)."""
    allowed = tuple(allowed)
    if isinstance(values, str):
        fail(
            name,
            f"a list of names from {', '.join(allowed)}",
            values,
            f"write [{values!r}] for one",
        )
    values = tuple(values)
    bad = [v for v in values if not isinstance(v, str) or v not in allowed]
    if bad:
        fail(name, f"names from {', '.join(allowed)}", bad[0])
    if len(set(values)) != len(values):
        fail(name, "distinct names (each once)", list(values))
    if len(values) < at_least:
        fail(name, f"at least {at_least} of {', '.join(allowed)}", list(values))
    return values


def text(name: str, value: Any, *, empty: bool = True, hint: str = "") -> str:
    """A string; ``empty=False`` refuses ``""``."""
    if not isinstance(value, str) or (not empty and not value):
        fail(name, "a non-empty text" if not empty else "a text", value, hint)
    return value


def device(value: Any, name: str = "device") -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists here is checked
    when the job starts, by :func:`advstudio.core.devices.pick_device`)."""
    ok = isinstance(value, str) and (
        value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit())
    )
    if not ok:
        fail(name, "one of auto, cpu, cuda, cuda:N, mps", value)
    return value
