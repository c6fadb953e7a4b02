"""Explanations against closed forms on a linear model: saliency is ``|w_c|``, integrated
gradients are ``x * w_c`` from a black baseline and sum to ``z_c(x) - z_c(0)``; Grad-CAM on the
built-in CNN has the image's size and is non-negative."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.attacks.explain import attribute, explain_pair
from advstudio.core.errors import ConfigError
from advstudio.core.models.registry import load_builtin


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_saliency_of_a_linear_model_is_w(linear):
    x = torch.rand(1, 1, 4, 4)
    w = linear[1].weight.detach()
    assert torch.allclose(attribute(linear, x, 2, "saliency").flatten(), w[2].abs())


def test_integrated_gradients_sum_to_the_logit_difference(linear):
    x = torch.rand(1, 1, 4, 4)
    ig = attribute(linear, x, 1, "integrated_gradients")
    with torch.no_grad():
        gap = linear(x)[0, 1] - linear(torch.zeros_like(x))[0, 1]
    assert float(ig.sum()) == pytest.approx(float(gap), abs=1e-5)
    assert torch.allclose(ig.flatten(), x.flatten() * linear[1].weight[1].detach(), atol=1e-5)


def test_pair_on_the_cnn_explains_both_images_for_both_classes():
    cnn = load_builtin("digits-cnn")
    x = torch.rand(1, 1, 28, 28)
    x_adv = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    ex = explain_pair(cnn, x, x_adv, 3)
    assert len(ex.maps) == 12
    cam = ex.maps[("adversarial", "new", "gradcam")]
    assert cam.shape == (1, 28, 28) and cam.min() >= 0
    assert ex.maps[("clean", "true", "saliency")].shape == (1, 28, 28)
    with pytest.raises(ConfigError, match="unknown explanation"):
        attribute(cnn, x, 0, "lime")


def test_gradcam_is_skipped_without_convolutions(linear):
    x = torch.rand(1, 1, 4, 4)
    ex = explain_pair(linear, x, x, 0)
    assert {k[2] for k in ex.maps} == {"saliency", "integrated_gradients"}
