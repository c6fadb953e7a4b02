"""One network written in every format the registry reads loads to the same classifier: the
same logits (to 1e-5) and the same FGSM images on the same batch. Models are made here, offline."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from advstudio.core.attacks.whitebox import fgsm
from advstudio.core.models import builders
from advstudio.core.models.card import ModelCard, write_card
from advstudio.core.models.registry import load_model
from advstudio.core.models.sniff import sniff

TOL = 1e-5
EPS = 8 / 255


class TinyColour(nn.Module):
    """A 3×32×32 CNN with BatchNorm (non-trivial running statistics) and 10 classes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_colour() -> nn.Module:
    torch.manual_seed(0)
    net = TinyColour()
    bn = net.features[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _pt2(net, path, x):
    torch.export.save(torch.export.export(net, (x[:2],)), path)  # a fixed batch of 2


def _pt2_dynamic(net, path, x):
    dyn = ({0: torch.export.Dim.AUTO},)
    torch.export.save(torch.export.export(net, (x[:2],), dynamic_shapes=dyn), path)


def _onnx(net, path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (x[:2],),
            str(path),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            opset_version=17,
        )  # onnx2torch's


def _safetensors(net, path, x):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def _zip(net, path, x):  # a DataParallel checkpoint in a wrapper, as training scripts write
    torch.save(
        {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
        path,
    )


def _legacy(net, path, x):
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)


def _torchscript(net, path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, x[:2]).save(str(path))


WRITERS = {  # name -> (writer, file name, sniffed format, needs the architecture)
    "pt2": (_pt2, "m.pt2", "export", False),
    "pt2-dynamic": (_pt2_dynamic, "d.pt2", "export", False),
    "onnx": (_onnx, "m.onnx", "onnx", False),
    "safetensors": (_safetensors, "m.safetensors", "safetensors", True),
    "zip": (_zip, "m.pt", "state_dict", True),
    "legacy": (_legacy, "legacy.pt", "legacy", True),
    "torchscript": (_torchscript, "m.ts", "torchscript", False),
}


def _every_format(net, arch, tmp_path, x):
    """{format: (classifier, max |Δlogit| against the net itself)}."""
    with torch.no_grad():
        reference = net(x)
    out = {}
    for name, (write, filename, fmt, weights_only) in WRITERS.items():
        path = tmp_path / filename
        write(net, path, x)
        assert sniff(path) == fmt, name
        write_card(
            ModelCard((3, 32, 32), "cifar10", architecture=arch if weights_only else None), path
        )
        clf = load_model(f"file:{path}")
        with torch.no_grad():
            out[name] = clf, (clf(x) - reference).abs().max().item()
    return out


def _check_same(classifiers, x):
    y = torch.arange(len(x)) % 10
    ref = None
    for name, (clf, delta) in classifiers.items():
        print(f"{name}: max |Δlogit| = {delta:.2e}")
        assert delta <= TOL, name
        x_adv = fgsm(clf, x, y, EPS)
        assert (x_adv - x).abs().max() <= EPS + 1e-6
        if ref is None:
            ref = x_adv
        else:
            torch.testing.assert_close(x_adv, ref, atol=0, rtol=0, msg=name)


def test_tiny_colour_cnn_in_every_format_gives_the_same_logits_and_fgsm(tmp_path, monkeypatch):
    monkeypatch.setitem(builders.CIFAR_ARCHITECTURES, "tiny-colour", TinyColour)
    net = tiny_colour()
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    classifiers = _every_format(net, "tiny-colour", tmp_path, x)
    assert all(
        c.class_names[0] == "airplane" and c.input_shape == (3, 32, 32)
        for c, _ in classifiers.values()
    )
    _check_same(classifiers, x)


@pytest.mark.slow
def test_torchvision_resnet18_with_10_classes_in_every_format(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    _check_same(_every_format(net, "resnet18", tmp_path, x), x)


def test_an_onnx_graph_that_does_not_convert_runs_as_a_black_box(tmp_path, monkeypatch):
    """Same logits through onnxruntime; no input gradient, so only black-box attacks."""
    import onnx2torch

    from advstudio.core.attacks.lab import has_input_gradients

    def refuse(model):
        raise NotImplementedError("Converter is not implemented (FancyOp)")

    monkeypatch.setattr(onnx2torch, "convert", refuse)
    net = tiny_colour()
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _onnx(net, tmp_path / "m.onnx", x)
    clf = load_model(
        f"file:{tmp_path / 'm.onnx'}", card={"input_shape": [3, 32, 32], "classes": "cifar10"}
    )
    with torch.no_grad():
        assert (clf(x) - net(x)).abs().max() <= TOL
    assert "black box" in clf.name and not has_input_gradients(clf)
