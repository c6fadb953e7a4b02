"""Interval bound propagation (Gowal et al. 2018, "On the effectiveness of interval bound
propagation for training verifiably robust models", arXiv:1810.12715).

An L-inf box ``[x - eps, x + eps]`` (cut to the pixel range [0, 1]) is pushed through the net
layer by layer as a centre ``mu`` and a radius ``r``: an affine layer ``W z + b`` maps them to
``W mu + b`` and ``|W| r`` (exact for one layer), a monotone one (ReLU, max-pool, the wrapper's
[0, 1] clamp) maps the two ends. Every output of every point of the box lies inside the bounds
(soundness), so an image is *verified* at ``eps`` when no point of the box can change its
class. As in the paper, the last linear layer is merged with the specification
``z_y - z_j`` ("elision"), which gives tighter margins than ``lower_y - upper_j``.

Layers bounded: Linear, Conv2d, ReLU, MaxPool2d, Flatten, BatchNorm1d/2d (eval mode: running
statistics), Dropout and Identity (eval mode: the identity), nested ``nn.Sequential``; an
advstudio ``Classifier`` adds its clamp and mean/std normalisation in front, as an affine
layer. Anything else is a :class:`ConfigError` naming the layer.

Units: pixels in [0, 1], ``eps`` in the same scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.whitebox import eval_mode
from advstudio.core.errors import ConfigError
from advstudio.core.models.classifier import Classifier

Box = tuple[torch.Tensor, torch.Tensor]
"""(centre, radius) of an interval, radius >= 0, same shape."""

_MONOTONE = (nn.ReLU, nn.MaxPool2d, nn.Flatten)
_IDENTITY_IN_EVAL = (nn.Dropout, nn.Identity)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)


class Normalise(nn.Module):
    """``(clamp(x, 0, 1) - mean) / std``: the part of a :class:`Classifier` in front of its net,
    as a layer IBP can bound (clamp is monotone; the rest is affine with ``std > 0``)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.clamp(0.0, 1.0) - self.mean) / self.std


def ibp_layers(model: nn.Module) -> list[nn.Module]:
    """The layers ``model`` applies, in order, checked to be ones IBP can bound: a
    :class:`Classifier` gives its :class:`Normalise` and its net's layers, an ``nn.Sequential``
    its children (recursively). :class:`ConfigError` names the first layer that cannot be
    bounded (a module with children is only walked when it is a Sequential: the order of any
    other module's forward is unknown)."""
    if isinstance(model, Classifier):
        return [Normalise(model.mean, model.std), *ibp_layers(model.net)]
    if isinstance(model, nn.Sequential):
        return [layer for child in model for layer in ibp_layers(child)]
    supported = (nn.Linear, nn.Conv2d, *_MONOTONE, *_IDENTITY_IN_EVAL, *_BATCHNORM, Normalise)
    if not isinstance(model, supported):
        raise ConfigError(
            f"interval bound propagation cannot bound the layer {model!r} "
            f"(supported: Linear, Conv2d, ReLU, MaxPool2d, Flatten, BatchNorm, "
            f"Dropout, nn.Sequential of them)"
        )
    if isinstance(model, _BATCHNORM) and model.running_mean is None:
        raise ConfigError(
            f"interval bound propagation needs running statistics in {model!r} "
            f"(track_running_stats=True)"
        )
    return [model]


def _batchnorm_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``scale * z + shift`` per channel."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _channel_view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, *([1] * (like.dim() - 2)))


def propagate(layer: nn.Module, box: Box) -> Box:
    """One layer's interval image of ``box``; exact for affine layers and elementwise monotone
    ones taken alone (max-pool too: it is monotone in every input)."""
    mu, r = box
    if isinstance(layer, nn.Linear):
        return F.linear(mu, layer.weight, layer.bias), F.linear(r, layer.weight.abs())
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ConfigError(f"interval bound propagation needs zero padding in {layer!r}")
        conv = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )
        return (
            F.conv2d(mu, layer.weight, layer.bias, **conv),
            F.conv2d(r, layer.weight.abs(), None, **conv),
        )
    if isinstance(layer, _BATCHNORM):
        scale, shift = _batchnorm_affine(layer)
        return (
            mu * _channel_view(scale, mu) + _channel_view(shift, mu),
            r * _channel_view(scale.abs(), r),
        )
    if isinstance(layer, Normalise):
        low, high = ((mu - r).clamp(0.0, 1.0), (mu + r).clamp(0.0, 1.0))
        low, high = (low - layer.mean) / layer.std, (high - layer.mean) / layer.std
        return (low + high) / 2, (high - low) / 2
    if isinstance(layer, _IDENTITY_IN_EVAL):
        return mu, r
    low, high = layer(mu - r), layer(mu + r)  # ReLU, MaxPool2d, Flatten: monotone
    return (low + high) / 2, (high - low) / 2


def input_box(x: torch.Tensor, eps: float) -> Box:
    """The L-inf ball of radius ``eps`` around ``x``, cut to [0, 1], as (centre, radius)."""
    low, high = (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)
    return (low + high) / 2, (high - low) / 2


def _check_geometry(model: nn.Module, x: torch.Tensor) -> None:
    if isinstance(model, Classifier) and tuple(x.shape[1:]) != model.input_shape:
        raise ConfigError(
            f"interval bound propagation needs images of the model's shape "
            f"{model.input_shape}, not {tuple(x.shape[1:])} (resize them first)"
        )


def interval_bounds(
    model: nn.Module, x: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of every logit over the box of radius ``eps`` around each image
    of ``x`` (N, C, H, W): two (N, classes) tensors. Differentiable (the training loss uses it);
    run the model in eval mode for BatchNorm and Dropout to mean what the bounds assume."""
    _check_geometry(model, x)
    box = input_box(x, eps)
    for layer in ibp_layers(model):
        box = propagate(layer, box)
    mu, r = box
    return mu - r, mu + r


def margin_lower_bounds(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
) -> torch.Tensor:
    """Per image and class ``j``, a lower bound on ``z_y - z_j`` over the box (N, classes);
    0 at ``j = y``. The last layer, when it is Linear, is merged with the specification
    (Gowal et al.'s elision: ``(w_y - w_j) . mu + b_y - b_j - |w_y - w_j| . r``); otherwise the
    bound is ``lower_y - upper_j``. Verified at ``eps``: every entry off ``y`` is > 0."""
    _check_geometry(model, x)
    layers = ibp_layers(model)
    last = layers[-1]
    box = input_box(x, eps)
    if not isinstance(last, nn.Linear):
        for layer in layers:
            box = propagate(layer, box)
        low, high = box[0] - box[1], box[0] + box[1]
        margins = low.gather(1, y.view(-1, 1)) - high
    else:
        for layer in layers[:-1]:
            box = propagate(layer, box)
        mu, r = box
        w, b = last.weight, last.bias
        w_diff = w[y].unsqueeze(1) - w.unsqueeze(0)  # (N, classes, features)
        centre = torch.einsum("nkf,nf->nk", w_diff, mu)
        if b is not None:
            centre = centre + b[y].unsqueeze(1) - b.unsqueeze(0)
        margins = centre - torch.einsum("nkf,nf->nk", w_diff.abs(), r)
    return margins.scatter(1, y.view(-1, 1), 0.0)


def verified(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Per image, True when IBP proves that no point of the L-inf ``eps`` box (in [0, 1])
    changes the class from ``y``. Eval mode, no gradients."""
    with eval_mode(model), torch.no_grad():
        margins = margin_lower_bounds(model, x, y, eps)
    own = F.one_hot(y, margins.shape[1]).bool()
    return (margins > 0).logical_or(own).all(1)


def ibp_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, kappa: float
) -> torch.Tensor:
    """Gowal et al.'s training loss ``kappa * CE(z(x), y) + (1 - kappa) * CE(z_hat(x, eps), y)``
    (mean over the batch), ``z_hat`` the worst-case logits from the elided margins
    (``z_hat_j = -margin_j``, ``z_hat_y = 0``). ``kappa`` in [0, 1]: 1 = plain training.

    The clean pass runs in the model's current mode; the bounds read BatchNorm's running
    statistics and treat Dropout as the identity, whatever the mode (batch statistics would
    make the bounds depend on the rest of the batch)."""
    clean = F.cross_entropy(model(x), y)
    if kappa == 1.0:
        return clean
    worst = -margin_lower_bounds(model, x, y, eps)
    return kappa * clean + (1.0 - kappa) * F.cross_entropy(worst, y)


def ibp_schedule(
    step: int,
    *,
    eps: float,
    kappa_final: float = 0.5,
    warmup_steps: int = 2000,
    ramp_steps: int = 10000,
) -> tuple[float, float]:
    """``(eps_t, kappa_t)`` at training ``step`` (Gowal et al. 2018, section 4): ``warmup_steps``
    of plain training (eps 0, kappa 1), then both ramp linearly over ``ramp_steps``, eps from 0
    to ``eps`` and kappa from 1 to ``kappa_final``, and stay there. The paper's MNIST run:
    2,000 warm-up and 10,000 ramp steps, kappa 0.5, and a training eps above the tested one
    (0.4 to verify at 0.3)."""
    if step < warmup_steps:
        return 0.0, 1.0
    t = 1.0 if ramp_steps == 0 else min(1.0, (step - warmup_steps) / ramp_steps)
    return eps * t, 1.0 + (kappa_final - 1.0) * t
