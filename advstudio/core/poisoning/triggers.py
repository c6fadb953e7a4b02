"""Backdoor triggers: a small patch stamped at a fixed place (BadNets, Gu et al. 2017).

Pixels are in [0, 1]. A :class:`Trigger` replaces (does not add to) the pixels of a ``size`` x
``size`` square whose top-left corner is at (``row``, ``col``), in every channel, so the stamped
image is exactly the patch there and untouched everywhere else.

>>> t = Trigger(size=3, row=24, col=24)          # the 3x3 white square of the reference figures
>>> x_triggered = t.stamp(x)                      # a new tensor; x is left alone
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from advstudio.core.errors import ConfigError

PATTERNS = ("square", "checker", "custom")


@dataclass(frozen=True)
class Trigger:
    """A square patch of ``size`` x ``size`` pixels with its top-left corner at (``row``, ``col``).

    ``pattern``:

    - ``"square"``: every pixel is ``value``;
    - ``"checker"``: ``value`` where ``(i + j)`` is even (the corner included), ``1 - value``
      elsewhere, so the patch has contrast on both dark and bright backgrounds;
    - ``"custom"``: the ``size * size`` pixel values in ``custom``, row by row (``value`` is not
      used).
    """

    size: int = 3
    row: int = 24
    col: int = 24
    pattern: str = "square"
    value: float = 1.0
    custom: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(
                f"trigger size must be a whole number >= 1 (pixels), not {self.size!r}"
            )
        for name in ("row", "col"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"trigger {name} must be a whole number >= 0 (the patch's "
                    f"top-left pixel), not {value!r}"
                )
        if self.pattern not in PATTERNS:
            raise ConfigError(
                f"trigger pattern must be one of {', '.join(PATTERNS)}, not {self.pattern!r}"
            )
        try:
            value = float(self.value)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ConfigError(f"trigger value must be a pixel value in [0, 1], not {self.value!r}")
        object.__setattr__(self, "value", value)
        try:
            custom = tuple(float(v) for v in self.custom)
        except (TypeError, ValueError):
            raise ConfigError("custom trigger pixel values must be numbers in [0, 1]") from None
        object.__setattr__(self, "custom", custom)
        if self.pattern == "custom":
            if len(custom) != self.size * self.size:
                raise ConfigError(
                    f"a custom trigger of size {self.size} needs {self.size * self.size} pixel "
                    f"values (size x size, row by row), not {len(custom)}"
                )
            if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in custom):
                raise ConfigError("custom trigger pixel values must be in [0, 1]")

    def patch(
        self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """The ``size`` x ``size`` patch of pixel values in [0, 1]."""
        s = self.size
        if self.pattern == "square":
            return torch.full((s, s), float(self.value), dtype=dtype, device=device)
        if self.pattern == "checker":
            i = torch.arange(s, device=device)
            even = (i.view(-1, 1) + i.view(1, -1)) % 2 == 0
            v = float(self.value)
            return torch.where(even, v, 1.0 - v).to(dtype)
        return torch.tensor(self.custom, dtype=dtype, device=device).view(s, s)

    def check_fits(self, height: int, width: int) -> None:
        """:class:`ConfigError` unless the patch lies wholly inside a ``height`` x ``width``
        image, with a message giving the allowed range of the corner."""
        s = self.size
        if s > height or s > width:
            raise ConfigError(
                f"the trigger ({s}x{s} pixels) is larger than the "
                f"{height}x{width} images; size must be in 1..{min(height, width)}"
            )
        if self.row + s > height or self.col + s > width:
            raise ConfigError(
                f"a {s}x{s} trigger at row {self.row}, col {self.col} goes off the edge of the "
                f"{height}x{width} images; row must be in 0..{height - s} and col in "
                f"0..{width - s}"
            )

    def stamp(self, x: torch.Tensor) -> torch.Tensor:
        """A copy of ``x`` ((N, C, H, W) or (C, H, W), in [0, 1]) with the patch written over
        the same pixels of every image and channel."""
        if x.dim() not in (3, 4):
            raise ConfigError(
                f"images must have shape (N, C, H, W) or (C, H, W), not {tuple(x.shape)}"
            )
        self.check_fits(x.shape[-2], x.shape[-1])
        out = x.clone()
        r, c, s = self.row, self.col, self.size
        out[..., r : r + s, c : c + s] = self.patch(x.dtype, x.device)
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.stamp(x)

    def mask(self, height: int, width: int) -> torch.Tensor:
        """Boolean (H, W): True on the pixels the trigger overwrites."""
        self.check_fits(height, width)
        m = torch.zeros(height, width, dtype=torch.bool)
        m[self.row : self.row + self.size, self.col : self.col + self.size] = True
        return m
