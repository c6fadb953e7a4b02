"""Model registry: built-ins, torchvision zoo from cached weights, and the user's own files."""

from __future__ import annotations

import pickle

import pytest
import torch

from advstudio.core.data import load_digits
from advstudio.core.errors import ModelLoadError, UnsafeModelFileError
from advstudio.core.models import registry
from advstudio.core.models.architectures import DigitsCNN, DigitsMLP
from advstudio.core.models.card import MissingCardError, ModelCard, write_card


def _accuracy(clf, x, y):
    with torch.no_grad():
        return (clf(x).argmax(1) == y).float().mean().item()


def test_builtin_cnn_reaches_97_percent_on_the_bundled_test_split():
    x, y = load_digits("test")
    clf = registry.load_builtin("digits-cnn")
    assert not clf.training
    acc = _accuracy(clf, x, y)
    print(f"digits-cnn test accuracy {acc:.4f}")
    assert acc >= 0.97
    assert abs(acc - registry.builtin_meta()["digits-cnn"]["test_accuracy"]) < 1e-3


def test_builtin_surrogate_is_a_different_architecture_and_works():
    x, y = load_digits("test")
    mlp = registry.load_builtin("digits-mlp")
    assert isinstance(mlp.net, DigitsMLP)
    assert _accuracy(mlp, x, y) > 0.9


def test_builtin_pgd_trained_cnn_is_accurate_and_more_robust_than_the_standard_one():
    from advstudio.core.attacks.sweep import sweep_images
    from advstudio.core.attacks.whitebox import pgd

    x, y = sweep_images(200, seed=1)
    standard, robust = registry.load_builtin("digits-cnn"), registry.load_builtin("digits-cnn-pgd")
    assert isinstance(robust.net, type(standard.net)) and robust.name.startswith("Digits CNN, PGD")
    meta = registry.builtin_meta()["digits-cnn-pgd"]
    assert meta["test_accuracy"] >= 0.95 and "PGD adversarial training" in meta["recipe"]

    def under_pgd(model):
        gen = torch.Generator().manual_seed(0)
        return _accuracy(model, pgd(model, x, y, 0.1, alpha=0.01, steps=10, generator=gen), y)

    assert under_pgd(robust) > under_pgd(standard) + 0.1


def test_list_models_has_builtins_and_the_zoo():
    keys = [s.key for s in registry.list_models()]
    for k in (
        "digits-cnn",
        "digits-mlp",
        "digits-cnn-pgd",
        "torchvision:resnet18",
        "torchvision:mobilenet_v3_small",
        "torchvision:efficientnet_b0",
    ):
        assert k in keys


def test_unknown_keys_name_the_known_ones():
    with pytest.raises(ModelLoadError, match="digits-cnn"):
        registry.load_model("nope")
    with pytest.raises(ModelLoadError, match="resnet18"):
        registry.load_model("torchvision:nope")


def test_torchvision_model_needs_its_weights_first(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelLoadError, match="not downloaded"):
        registry.load_model("torchvision:mobilenet_v3_small")


def test_torchvision_model_from_cached_weights(tmp_path, monkeypatch):
    """Stand-in weights in the hub cache: the wrapper gets ImageNet names and geometry."""
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = registry.weights_path("mobilenet_v3_small")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    clf = registry.load_model("torchvision:mobilenet_v3_small")
    assert clf.num_classes == 1000 and clf.class_names[1] == "goldfish"
    assert clf(torch.rand(1, 3, 300, 400)).shape == (1, 1000)
    assert clf(torch.rand(1, 1, 28, 28)).shape == (1, 1000)  # grayscale digits too


def test_user_state_dict_is_recognised(tmp_path):
    net = DigitsMLP()
    torch.save(net.state_dict(), tmp_path / "mine.pt")
    clf = registry.load_model(f"file:{tmp_path / 'mine.pt'}")
    assert isinstance(clf.net, DigitsMLP) and "mine.pt" in clf.name
    x = torch.rand(2, 1, 28, 28)
    net.eval()
    torch.testing.assert_close(clf(x), net((x - 0.1307) / 0.3081))


def test_user_torchscript_takes_its_card(tmp_path):
    scripted = torch.jit.script(DigitsCNN().eval())
    scripted.save(str(tmp_path / "cnn.ts"))
    with pytest.raises(MissingCardError, match="input_shape, classes") as info:
        registry.load_user_model(tmp_path / "cnn.ts")
    assert info.value.probe.input_shape == (1, 28, 28) and info.value.probe.num_classes == 10
    write_card(ModelCard((1, 28, 28), "digits"), tmp_path / "cnn.ts")
    clf = registry.load_user_model(tmp_path / "cnn.ts")
    assert clf.num_classes == 10 and clf.input_shape == (1, 28, 28)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(clf(x), scripted(x))  # no normalisation the card does not ask


def test_state_dict_without_a_card_that_fits_no_builtin_asks_for_one(tmp_path):
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "odd.pt")
    with pytest.raises(MissingCardError, match="input_shape, classes, architecture"):
        registry.load_user_model(tmp_path / "odd.pt")


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (str(_Evil.marker), "w"))


def test_pickled_code_is_never_run(tmp_path):
    """A malicious checkpoint would create a file when unpickled; we must refuse it."""
    _Evil.marker = tmp_path / "pwned"
    torch.save({"model": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeModelFileError, match="does not unpickle"):
        registry.load_user_model(tmp_path / "evil.pt")
    assert not _Evil.marker.exists()


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.pt").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelLoadError, match="not a PyTorch model file"):
        registry.load_user_model(tmp_path / "x.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        registry.load_user_model(tmp_path / "empty.pt")
    with pytest.raises(ModelLoadError, match="not found"):
        registry.load_user_model(tmp_path / "missing.pt")
