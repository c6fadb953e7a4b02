"""AutoAttack standard: the ensemble choice, the four attacks on the CNN with the per-sample
worst case, and AutoAttack's checks firing on a randomised, a softmax-output and a
zero-gradient model while staying silent on the built-ins."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.attacks import checks
from advstudio.core.attacks.robust import ENSEMBLES, RobustConfig, robust_accuracy
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import ConfigError
from advstudio.core.models.registry import load_builtin
from tests.core.helpers import NoGradLinear


@pytest.fixture(scope="module")
def digits():
    return sweep_images(16, seed=0)


class Noisy(nn.Module):
    """A linear digit classifier with Gaussian noise on its logits (a randomised defence)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x.flatten(1))
        return z + 0.1 * torch.randn_like(z)


class Softmaxed(nn.Module):
    """A linear digit classifier that outputs probabilities, not logits."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.lin(x.flatten(1)), 1)


def _found(model, digits) -> set[str]:
    return {f.check for f in checks.before_attacks(model, digits[0][:8], digits[1][:8])}


def test_each_check_fires_on_its_model(digits):
    torch.manual_seed(0)
    assert _found(Noisy(), digits) == {"randomness"}
    assert _found(Softmaxed(), digits) == {"probabilities"}
    assert _found(NoGradLinear(), digits) == {"zero-gradients"}


@pytest.mark.parametrize("name", ["digits-cnn", "digits-cnn-pgd"])
def test_checks_are_silent_on_the_builtins(name, digits):
    assert _found(load_builtin(name), digits) == set()


def test_masking_needs_a_query_attack_after_a_gradient_one():
    found = checks.masking({"apgd-ce": 3, "square": 2}, ("apgd-ce",), ("square",))
    assert found is not None and "square (2)" in found.text
    assert checks.masking({"apgd-ce": 3, "square": 0}, ("apgd-ce",), ("square",)) is None
    assert checks.masking({"square": 2, "apgd-ce": 0}, ("apgd-ce",), ("square",)) is None


def test_ensemble_choice():
    assert RobustConfig().attacks == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert RobustConfig(ensemble="fast").attacks == ("apgd-ce", "apgd-t", "spsa")
    assert RobustConfig(ensemble="fast", attacks=("fgsm",)).attacks == ("fgsm",)
    with pytest.raises(ConfigError, match="ensemble must be one of standard, fast"):
        RobustConfig(ensemble="plus")


def test_standard_ensemble_on_the_cnn(digits):
    cnn = load_builtin("digits-cnn")
    x, y = digits[0][:12], digits[1][:12]
    res = robust_accuracy(
        cnn, x, y, 0.2, ENSEMBLES["standard"], steps=10, target_classes=2, square_queries=100
    )
    n_right = round(res.clean_accuracy * 12)
    assert res.robust_accuracy <= res.fgsm_accuracy <= res.clean_accuracy
    assert res.robust_accuracy < res.clean_accuracy
    assert sum(res.broken.values()) == n_right - round(res.robust_accuracy * 12)
    assert set(res.seconds) == set(ENSEMBLES["standard"])
    assert res.warnings == [] or [w.check for w in res.warnings] == ["masking"]
    assert sorted(set(res.outcomes) - {"robust", "misclassified"}) == sorted(
        n for n, k in res.broken.items() if k
    )


class ZeroGradient(nn.Module):
    """A linear digit classifier whose output keeps a graph but has zero input gradient (a
    masked model: what a saturated or quantised defence looks like to a gradient attack)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x.flatten(1))
        return z.detach() + 0 * z


def test_masked_model_is_flagged_before_and_after(digits):
    torch.manual_seed(0)
    model = ZeroGradient()
    x = digits[0][:6]
    y = model(x).argmax(1)  # every image right when clean
    # eps .02: APGD's random start alone flips none of these six; Square's search flips three
    res = robust_accuracy(model, x, y, 0.02, ("apgd-ce", "square"), steps=5, square_queries=200)
    assert res.clean_accuracy == 1 and res.broken["apgd-ce"] == 0
    assert res.broken["square"] > 0
    assert [w.check for w in res.warnings] == ["zero-gradients", "masking"]
