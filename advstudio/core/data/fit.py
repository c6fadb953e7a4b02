"""Fitting a data set's images to a model's input shape, only when the user asks.

A data set comes at its native shape (:mod:`advstudio.core.data.sets`); the model's card says
what it takes. When they differ, the job's ``fit`` policy decides: ``"none"`` refuses with a
message naming both shapes (so nothing is silently resized), ``"resize"`` scales the whole image,
``"center-crop"`` first cuts the largest centred region of the model's aspect ratio, then
scales it (no distortion). Either of the last two also converts channels (RGBA -> RGB drops
alpha; RGB -> grey by ITU-R 601 luma; grey -> RGB by repetition). What was done comes back in
words, for the log and the UI.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advstudio.core.data.spec import FIT_POLICIES, check_fit, describe_shape  # noqa: F401
from advstudio.core.errors import ConfigError

LUMA = (0.299, 0.587, 0.114)


def _shape_words(shape: tuple[int, ...]) -> str:
    return describe_shape(tuple(shape))


def _channels(x: torch.Tensor, c: int) -> tuple[torch.Tensor, str]:
    have = x.shape[1]
    if have == c:
        return x, ""
    if have == 4:
        x, have = x[:, :3], 3
        if c == 3:
            return x, "dropped the alpha channel"
    if have == 3 and c == 1:
        luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * luma).sum(1, keepdim=True), "converted RGB → grey (ITU-R 601 luma)"
    if have == 1 and c == 3:
        return x.expand(-1, 3, -1, -1), "converted grey → RGB (repeated)"
    raise ConfigError(f"cannot convert {have}-channel images to the model's {c} channels")


def _centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The largest centred region with the aspect ratio h:w."""
    H, W = x.shape[-2:]
    if H * w > W * h:  # too tall
        ch, cw = max(1, round(W * h / w)), W
    else:
        ch, cw = H, max(1, round(H * w / h))
    top, left = (H - ch) // 2, (W - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def fit_to_model(
    x: torch.Tensor, input_shape: tuple[int, int, int], policy: str = "none"
) -> tuple[torch.Tensor, str]:
    """``x`` (N, C, H, W) in [0, 1] made to ``input_shape`` (C, H, W) under ``policy``.

    Returns ``(images, what was done in words)``, e.g. ``"resized 64×64 → 32×32"`` (``""``
    when they already fit). Resizing is bilinear with antialiasing, clamped to [0, 1].
    Raises :class:`ConfigError` when they do not fit and ``policy`` is ``"none"``.
    """
    check_fit(policy, "policy")
    c, h, w = (int(s) for s in input_shape)
    if tuple(x.shape[1:]) == (c, h, w):
        return x, ""
    if policy == "none":
        raise ConfigError(
            f"the data set's images are {_shape_words(x.shape[1:])} but the model takes "
            f"{_shape_words((c, h, w))}; choose fit 'resize' or 'center-crop' to convert "
            "them, or a data set of the model's shape"
        )
    x, note = _channels(x, c)
    notes = [note] if note else []
    H, W = x.shape[-2:]
    if (H, W) != (h, w):
        if policy == "center-crop":
            x = _centre_crop(x, h, w)
            if tuple(x.shape[-2:]) != (H, W):
                notes.append(f"centre-cropped {H}×{W} → {x.shape[-2]}×{x.shape[-1]}")
        if tuple(x.shape[-2:]) != (h, w):
            notes.append(f"resized {x.shape[-2]}×{x.shape[-1]} → {h}×{w}")
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0).contiguous(), "; ".join(notes)
