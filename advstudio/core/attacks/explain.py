"""Why the model says what it says, on the clean and the adversarial image: three attribution
maps computed with captum (Kokhlikyan et al. 2020), for the true class and for the class the
attack produced.

- ``saliency``: ``|d z_c / d x|`` (Simonyan et al. 2014, arXiv:1312.6034), the absolute input
  gradient of the class logit; on a linear model it is ``|w_c|``;
- ``integrated gradients`` (Sundararajan et al. 2017, arXiv:1703.01365): ``(x - x') times`` the
  average gradient on the straight path from the baseline ``x'`` (black, 0) to ``x``, 50
  Gauss-Legendre steps (captum's default); the maps sum to ``z_c(x) - z_c(x')``
  (completeness);
- ``Grad-CAM`` (Selvaraju et al. 2017, arXiv:1610.02391): the last convolution's feature maps
  weighted by their average gradient, ReLU, upsampled to the image; only for models with a
  ``Conv2d``.

Maps are (C, H, W) for saliency and IG, (1, H, W) for Grad-CAM, on the model's device; eval mode
restored on exit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core.attacks.whitebox import check_images, eval_mode
from advstudio.core.errors import ConfigError

METHODS = ("saliency", "integrated_gradients", "gradcam")
IG_STEPS = 50


def last_conv(model: nn.Module) -> nn.Conv2d | None:
    """The model's last ``Conv2d`` in module order, or None."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def attribute(model: nn.Module, x: torch.Tensor, target: int, method: str) -> torch.Tensor:
    """The ``method`` map of class ``target`` for one image ``x`` ((1, C, H, W) or (C, H, W))."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    if method not in METHODS:
        raise ConfigError(f"unknown explanation {method!r}; allowed: {', '.join(METHODS)}")
    xb, _ = check_images(x)
    xb = xb[:1].detach().clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        if method == "saliency":
            out = Saliency(model).attribute(xb, target=target, abs=True)
        elif method == "integrated_gradients":
            out = IntegratedGradients(model).attribute(
                xb, torch.zeros_like(xb), target=target, n_steps=IG_STEPS
            )
        else:
            layer = last_conv(model)
            if layer is None:
                raise ConfigError("Grad-CAM needs a model with a Conv2d layer")
            cam = LayerGradCam(model, layer).attribute(xb, target=target, relu_attributions=True)
            out = LayerAttribution.interpolate(cam, tuple(xb.shape[-2:]), "bilinear")
    return out[0].detach()


@dataclass
class Explanation:
    """``maps[(image, class_role, method)]``: image ``"clean"`` / ``"adversarial"``, role
    ``"true"`` / ``"new"``; ``true_class`` / ``new_class`` the classes explained."""

    true_class: int
    new_class: int
    maps: dict[tuple[str, str, str], torch.Tensor]


def explain_pair(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    true_class: int,
    methods: tuple[str, ...] = METHODS,
) -> Explanation:
    """Every map of ``methods`` for the clean and the adversarial image, for the true class and
    the adversarial image's predicted class (Grad-CAM skipped on a model without convolutions).

    >>> ex = explain_pair(cnn, x, x_adv, 7)
    >>> ex.maps[("adversarial", "new", "gradcam")]
    """
    xa, _ = check_images(x_adv)
    with eval_mode(model), torch.no_grad():
        new = int(model(xa[:1]).argmax(1))
    if last_conv(model) is None:
        methods = tuple(m for m in methods if m != "gradcam")
    maps = {
        (name, role, m): attribute(model, image, cls, m)
        for name, image in (("clean", x), ("adversarial", x_adv))
        for role, cls in (("true", true_class), ("new", new))
        for m in methods
    }
    return Explanation(true_class, new, maps)
