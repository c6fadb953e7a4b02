"""Model cards: the round trip, the messages, and what a card means for the threat model."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from advstudio.core.attacks.whitebox import fgsm
from advstudio.core.errors import ConfigError, ModelLoadError
from advstudio.core.models.card import MissingCardError, ModelCard, card_path, read_card, write_card
from advstudio.core.models.registry import load_model
from advstudio.core.models.user import load_user_model

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_a_card_round_trips_through_its_toml_file(tmp_path):
    card = ModelCard((3, 32, 32), ("cat", "dog"), MEAN, STD, (0.0, 255.0), 36, "wrn-28-10", "mine")
    path = write_card(card, tmp_path / "model.pt2")
    assert path == tmp_path / "model.toml" == card_path(tmp_path / "model.pt2")
    assert read_card(tmp_path / "model.pt2") == card
    assert read_card(tmp_path / "other.onnx") is None
    assert ModelCard((1, 28, 28), "fashion-mnist").class_names[9] == "Ankle boot"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"input_shape": [3, 32], "classes": "cifar10"}, "input_shape must be three positive"),
        ({"input_shape": [3, 32, 32], "classes": "cifar11"}, "classes must be one of digits"),
        (
            {"input_shape": [3, 32, 32], "classes": "cifar10", "mean": [0.1, 0.2]},
            "mean must be 1 or 3",
        ),
        ({"input_shape": [3, 32, 32], "classes": "cifar10", "mean": [0.1]}, "mean and std"),
        ({"input_shape": [3, 32, 32]}, "lacks classes"),
        (
            {"input_shape": [3, 32, 32], "classes": "cifar10", "colour": "rgb"},
            "unknown fields colour",
        ),
    ],
)
def test_a_bad_card_says_which_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        ModelCard.from_dict(fields)


def test_a_broken_card_file_names_the_file(tmp_path):
    (tmp_path / "m.toml").write_text('input_shape = [3, 32, 32]\nclasses = "nope"\n')
    with pytest.raises(ModelLoadError, match="m.toml: classes must be one of.*edit .*m.toml"):
        read_card(tmp_path / "m.onnx")


class Tuple3(nn.Module):
    """1×28×28 in, (3 logits, features) out: the shape of many research models."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x.flatten(1)), x.flatten(1)


def test_a_card_less_file_names_the_missing_fields_with_a_probe(tmp_path):
    """Issue #18 item 3: 3 classes at 1×28×28 and a tuple output used to crash the probe."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(Tuple3().eval(), torch.rand(1, 1, 28, 28)).save(str(tmp_path / "t.ts"))
    with pytest.raises(
        MissingCardError,
        match="t.ts .*no model card giving input_shape, "
        "classes.*write t.toml.*1×28×28 input and 3 classes",
    ) as info:
        load_user_model(tmp_path / "t.ts")
    assert info.value.missing == ("input_shape", "classes")
    clf = load_model(
        f"file:{tmp_path / 't.ts'}", card={"input_shape": [1, 28, 28], "classes": ["a", "b", "c"]}
    )
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), clf.net(x)[0])
    with pytest.raises(ModelLoadError, match="returns 3 logits but its card names 10"):
        load_model(
            f"file:{tmp_path / 't.ts'}", card={"input_shape": [1, 28, 28], "classes": "digits"}
        )
    with pytest.raises(
        ModelLoadError, match="does not run on the card's input shape 3×32×32.*found 1×28×28"
    ):
        load_model(
            f"file:{tmp_path / 't.ts'}",
            card={"input_shape": [3, 32, 32], "classes": ["a", "b", "c"]},
        )


class Core(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 10)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(z)).flatten(1))


class Inside(nn.Module):
    """The same core with the normalisation (or the 0..255 scale) done inside the model."""

    def __init__(self, core: nn.Module, scale: float, mean, std) -> None:
        super().__init__()
        self.core, self.scale = core, scale
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.core((x * self.scale - self.mean) / self.std)


def _export(net, path, card):
    torch.export.save(torch.export.export(net.eval(), (torch.rand(2, 3, 8, 8),)), path)
    write_card(card, path)
    return load_user_model(path)


@pytest.mark.parametrize("scale, value_range", [(1.0, (0.0, 1.0)), (255.0, (0.0, 255.0))])
def test_an_eps_ball_in_pixel_space_is_the_same_ball_wherever_the_normalisation_is(
    tmp_path, scale, value_range
):
    """A model normalising inside, card without mean/std, and the bare core, card with them:
    the same logits and the same FGSM images, |x_adv - x| <= eps in [0, 1] pixels for both."""
    core = Core()
    mean, std = tuple(m * scale for m in MEAN), tuple(s * scale for s in STD)
    inside = _export(
        Inside(core, scale, mean, std),
        tmp_path / "inside.pt2",
        ModelCard((3, 8, 8), "cifar10", value_range=(0.0, 1.0)),
    )
    carded = _export(
        core, tmp_path / "core.pt2", ModelCard((3, 8, 8), "cifar10", mean, std, value_range)
    )
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(6)
    with torch.no_grad():
        z = (x * scale - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        torch.testing.assert_close(carded(x), core(z), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(inside(x), carded(x), atol=1e-5, rtol=1e-5)
    a, b = fgsm(inside, x, y, 0.03), fgsm(carded, x, y, 0.03)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert (a - x).abs().max() <= 0.03 + 1e-6


def test_without_mean_and_std_nothing_is_normalised(tmp_path):
    """Issue #17: a 1×28×28, 10-class model was silently given the digits' mean/std."""
    core = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    torch.export.save(torch.export.export(core, (torch.rand(2, 1, 28, 28),)), tmp_path / "d.pt2")
    clf = load_user_model(tmp_path / "d.pt2", card=ModelCard((1, 28, 28), "digits"))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), core(x))
