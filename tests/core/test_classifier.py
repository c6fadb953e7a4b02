"""The [0, 1]-pixel wrapper: normalisation, channels, resize, gradients, eval mode."""

from __future__ import annotations

import torch
from torch import nn

from advstudio.core.models.classifier import Classifier, penultimate_features


class Identity(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def test_normalisation_is_inside_the_wrapper():
    clf = Classifier(Identity(), (3, 2, 2), ["a"] * 12, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 2, 2)
    expected = torch.stack([(x[:, 0] - 0.5) / 0.5, (x[:, 1] - 0.25) / 0.25, x[:, 2] / 2.0], 1)
    torch.testing.assert_close(clf(x), expected.flatten(1))


def test_rgb_to_gray_uses_luma_weights_and_alpha_is_dropped():
    clf = Classifier(Identity(), (1, 1, 1), ["a"])
    x = torch.tensor([0.2, 0.4, 0.6, 0.9]).view(1, 4, 1, 1)
    assert clf.prepare(x).item() == torch.tensor(0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6).item()


def test_gray_to_rgb_and_resize():
    clf = Classifier(Identity(), (3, 8, 8), ["a"])
    x = torch.full((1, 1, 32, 32), 0.3)
    seen = clf.prepare(x)
    assert seen.shape == (1, 3, 8, 8)
    torch.testing.assert_close(seen, torch.full_like(seen, 0.3))


def test_imagenet_style_resize_then_centre_crop():
    clf = Classifier(Identity(), (3, 4, 4), ["a"], resize_to=4)
    x = torch.zeros(1, 3, 4, 8)
    x[..., 2:6] = 1.0  # the centre half is white
    torch.testing.assert_close(clf.prepare(x), torch.ones(1, 3, 4, 4))


def test_gradients_reach_the_pixels():
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2), ["a", "b"])
    x = torch.rand(1, 1, 4, 4, requires_grad=True)  # resized inside
    clf(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_predict_restores_training_mode_and_sorts():
    net = nn.Sequential(nn.Flatten(), nn.Linear(1, 3, bias=True))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([0.0, 2.0, 1.0]))
    clf = Classifier(net, (1, 1, 1), ["zero", "two", "one"])
    clf.train()
    pred = clf.predict(torch.zeros(1, 1, 1, 1), k=3)[0]
    assert clf.training
    assert pred.names == ["two", "one", "zero"]
    e = torch.exp(torch.tensor([0.0, 2.0, 1.0]))
    assert abs(pred.probs[0] - (e[1] / e.sum()).item()) < 1e-6


def test_penultimate_features_of_the_builtin_cnn():
    from advstudio.core.models.registry import load_builtin

    clf = load_builtin("digits-cnn")
    assert penultimate_features(clf, torch.rand(3, 1, 28, 28)).shape == (3, 128)
