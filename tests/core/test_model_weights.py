"""Weights files into named architectures: the CIFAR nets, torchvision, and what a mismatch says."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.errors import ModelLoadError
from advstudio.core.models import builders, cifar
from advstudio.core.models.user import load_user_model
from advstudio.core.models.weights import unwrap

CARD = {"input_shape": [3, 32, 32], "classes": "cifar10"}


def _params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_cifar_networks_have_the_published_sizes_and_robustbench_names():
    """Parameter counts of the papers' / RobustBench's models (WRN-28-10: 36.5 M)."""
    wrn = cifar.WideResNet(28, 10)
    assert _params(wrn) == 36_479_194
    keys = set(wrn.state_dict())
    assert {
        "conv1.weight",
        "block1.layer.0.convShortcut.weight",
        "block3.layer.3.bn2.running_var",
        "bn1.weight",
        "fc.bias",
    } <= keys
    assert _params(cifar.PreActResNet18()) == 11_171_146
    assert "layer2.0.shortcut.0.weight" in cifar.PreActResNet18().state_dict()
    assert _params(cifar.CifarResNet18()) == 11_173_962
    for net in (wrn, cifar.PreActResNet18(), cifar.CifarResNet18()):
        assert net.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "arch",
    [
        arch if arch == "mobilenet_v3_small" else pytest.param(arch, marks=pytest.mark.slow)
        for arch in builders.TORCHVISION_ARCHITECTURES
    ],
)
def test_torchvision_architectures_build_with_any_number_of_classes_and_no_download(arch):
    net = builders.build(arch, 7, (3, 32, 32))
    assert list(net.state_dict().values())[-1].shape[0] == 7


def test_a_mismatch_lists_missing_unexpected_and_shape_differences(tmp_path):
    torch.save(cifar.CifarResNet18().state_dict(), tmp_path / "r.pt")
    with pytest.raises(ModelLoadError) as info:
        load_user_model(tmp_path / "r.pt", card={**CARD, "architecture": "resnet18"})
    text = str(info.value)
    assert "the weights in r.pt (resnet18) do not fit" in text
    assert "conv1.weight: file 64×3×3×3, model 64×3×7×7" in text
    assert "17 missing keys (layer2.0.downsample.0.weight, " in text
    assert "17 unexpected keys (layer2.0.shortcut.0.weight, " in text  # "linear" for "fc" too
    torch.save(builders.build("resnet18", 100, (3, 32, 32)).state_dict(), tmp_path / "c100.pt")
    with pytest.raises(
        ModelLoadError,
        match="2 shape mismatches \\(fc.weight: file 100×512, "
        "model 10×512; fc.bias: file 100, model 10\\)",
    ):
        load_user_model(tmp_path / "c100.pt", card={**CARD, "architecture": "resnet18"})


def test_checkpoint_wrappers_and_prefixes_are_undone():
    w = torch.zeros(2)
    assert unwrap({"state_dict": {"module.a": w, "module.b": w}}, "f") == {"a": w, "b": w}
    assert unwrap({"model": {"model.a": w}, "epoch": 3}, "f") == {"a": w}
    with pytest.raises(ModelLoadError, match="f holds a dict without tensors"):
        unwrap({"epoch": 3}, "f")


def test_a_robustbench_style_wrn_checkpoint_loads_with_its_card(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = cifar.WideResNet(28, 10).eval()
    save_file(net.state_dict(), str(tmp_path / "wrn.safetensors"))
    clf = load_user_model(tmp_path / "wrn.safetensors", card={**CARD, "architecture": "wrn-28-10"})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), net(x))
    assert "wrn-28-10" in clf.name


def _as_if_saved_on_a_gpu(src, dst):
    """Rewrite a torch.save zip so its tensors say they live on ``cuda:0`` (protocol-2 pickle,
    no frames: the location string can change length in place)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)


def test_a_state_dict_saved_on_a_gpu_opens_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    net = cifar.PreActResNet18(bn_before_fc=True).eval()
    torch.save(net.state_dict(), tmp_path / "cpu.pt")
    _as_if_saved_on_a_gpu(tmp_path / "cpu.pt", tmp_path / "gpu.pt")
    if not torch.cuda.is_available():  # the rewrite took: a plain load wants the GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pt", weights_only=True)
    clf = load_user_model(tmp_path / "gpu.pt", card={**CARD, "architecture": "preact-resnet18"})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), net(x))
