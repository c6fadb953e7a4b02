"""Wrappers for nets that cannot switch mode or batch size, and the logits of tuple outputs."""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.errors import ModelLoadError


class FrozenNet(nn.Module):
    """A module whose mode is fixed (an exported program, a converted graph) made to tolerate
    ``train()``/``eval()`` (``Classifier`` and ``eval_mode`` switch modes) and fixed batch sizes.

    ``batch`` is the batch size the program was exported with when it is fixed (None:
    dynamic); other batch sizes are cut into chunks of it, the last one padded with copies of
    its first image and the padding's logits dropped.
    """

    def __init__(self, module: nn.Module, batch: int | None) -> None:
        super().__init__()
        self.module = module
        self.batch = batch

    def train(self, mode: bool = True) -> FrozenNet:
        self.training = mode  # the graph's mode is fixed at export; do not recurse
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is None or x.shape[0] == self.batch:
            return first_tensor(self.module(x))
        outs = []
        for chunk in x.split(self.batch):
            n = chunk.shape[0]
            if n < self.batch:
                chunk = torch.cat([chunk, chunk[:1].expand(self.batch - n, *chunk.shape[1:])])
            outs.append(first_tensor(self.module(chunk))[:n])
        return torch.cat(outs)


def first_tensor(out: object) -> torch.Tensor:
    """The logits of a model that returns a tensor, or a tuple/list/dict whose first value is
    one (e.g. ``(logits, features)``)."""
    while not isinstance(out, torch.Tensor):
        if isinstance(out, dict) and out:
            out = next(iter(out.values()))
        elif isinstance(out, (tuple, list)) and out:
            out = out[0]
        else:
            raise ModelLoadError(
                f"the model returns {type(out).__name__}, not a tensor of "
                "logits (nor a tuple whose first item is one)"
            )
    return out
