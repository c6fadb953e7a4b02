"""The wrapper every model goes through, so attacks work in [0, 1] pixel space.

``Classifier(net, ...)`` owns the input geometry (channels, size), the resize and the mean/std
normalisation. Its ``forward`` takes a batch of images in [0, 1], shape (N, C, H, W) with any C in
{1, 3, 4} and any H, W, and returns logits (the first tensor of a net returning a tuple);
gradients flow back to those pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.errors import NonFiniteOutputError
from advstudio.core.models.frozen import first_tensor


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image: indices, names and probabilities, most likely first."""

    indices: list[int]
    names: list[str]
    probs: list[float]


class Classifier(nn.Module):
    """A classifier on [0, 1] images.

    Parameters
    ----------
    net : the model proper; takes normalised (N, C, H, W) input of ``input_shape``.
    input_shape : (C, H, W) the net expects.
    class_names : one name per output.
    mean, std : per-channel normalisation applied after resizing, in the units of
        ``value_range`` (the identity by default: nothing is normalised unless asked).
    name : shown in the UI.
    resize_to : short side to scale to before the centre crop (ImageNet style), or None.
    value_range : the pixel scale the net takes; [0, 1] pixels are mapped onto it linearly
        (``(0, 255)`` for a net trained on raw bytes).

    :func:`advstudio.core.models.user.classifier_from_card` builds one from a model card; the
    card it was built from is kept as ``card`` (None for the built-in constructors).
    """

    def __init__(
        self,
        net: nn.Module,
        input_shape: tuple[int, int, int],
        class_names: Sequence[str],
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        name: str = "model",
        resize_to: int | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        c = input_shape[0]
        if len(mean) not in (1, c) or len(std) not in (1, c):
            raise ValueError(f"mean/std need 1 or {c} values, got {len(mean)} and {len(std)}")
        self.net = net
        self.input_shape = tuple(input_shape)
        self.class_names = list(class_names)
        self.name = name
        self.resize_to = resize_to
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.card = None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.eval()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images of any size and channel count -> the net's geometry, still in [0, 1].

        This is what "the image as the model sees it" shows. Channel rules: 4 -> drop alpha;
        3 -> 1 by ITU-R 601 luma; 1 -> 3 by repetition. Resize is bilinear with antialiasing
        (differentiable); ``resize_to`` (ImageNet style) first scales the short side, then
        centre-crops.
        """
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
        c, h, w = self.input_shape
        if x.shape[1] == 4:
            x = x[:, :3]
        if x.shape[1] == 3 and c == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
            x = (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != c:
            raise ValueError(f"{self.name} takes {c}-channel images; got {x.shape[1]} channels")
        if self.resize_to is not None and tuple(x.shape[-2:]) != (h, w):
            short = min(x.shape[-2:])
            scale = self.resize_to / short
            size = (max(h, round(x.shape[-2] * scale)), max(w, round(x.shape[-1] * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
            top, left = (size[0] - h) // 2, (size[1] - w) // 2
            x = x[..., top : top + h, left : left + w]
        elif tuple(x.shape[-2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(0.0, 1.0)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return first_tensor(self.net(self.normalise(self.prepare(x01))))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared [0, 1] pixels -> the net's input: onto ``value_range``, then mean/std."""
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            x = low + x * (high - low)
        return (x - self.mean) / self.std

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self(x01)

    @torch.no_grad()
    def predict(
        self, x01: torch.Tensor, k: int = 5, *, source: str = "the input"
    ) -> list[Prediction]:
        """Top-``k`` predictions per image, in eval mode, without gradients. ``source`` names
        the input in the :class:`NonFiniteOutputError` raised for NaN or infinite scores."""
        was_training = self.training
        self.eval()
        try:
            logits = self(x01.to(self.device)).float()
        finally:
            self.train(was_training)
        require_finite_scores(logits, self.name, source)
        probs = torch.softmax(logits, dim=1).cpu()
        k = min(k, probs.shape[1])
        top = probs.topk(k, dim=1)
        return [
            Prediction(idx.tolist(), [self.class_names[i] for i in idx.tolist()], p.tolist())
            for p, idx in zip(top.values, top.indices)
        ]


def require_finite_scores(logits: torch.Tensor, model: str, source: str) -> None:
    """Refuse NaN or infinite logits: softmax would turn them into NaN probabilities, and no
    bar, verdict or top-k ordering means anything then (an infinite logit gives NaN too)."""
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteOutputError(
            f"{model} gave scores that are NaN or infinite for {source}, so it has no prediction "
            "(a broken or diverged model, or an input it cannot handle)"
        )


def penultimate_features(clf: Classifier, x01: torch.Tensor) -> torch.Tensor:
    """Activations before the last layer (e.g. the CNN's 128-d features), for Fréchet distances.

    Works for nets built as ``nn.Sequential`` (the built-ins); raises ``TypeError`` otherwise.
    """
    if not isinstance(clf.net, nn.Sequential):
        raise TypeError(f"{clf.name} is not a Sequential net; no penultimate layer to read")
    x = clf.prepare(x01)
    body = nn.Sequential(*list(clf.net.children())[:-1])
    return body(clf.normalise(x)).flatten(1)
