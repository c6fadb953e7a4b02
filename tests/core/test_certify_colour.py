"""Certification on the user's data: randomised smoothing and IBP read any set of the shared
data choice (here a colour folder made in the test) through the same loader as the sweep, and
their figures are the same as the core functions give on those very images."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.certify.job import IbpConfig, SmoothingConfig, run_ibp, run_smoothing
from advstudio.core.data.fields import job_images
from advstudio.core.jobs import drive
from advstudio.core.models import memory
from tests.core.colour_data import CLASSES, ColourNet, colour_folder

CARD = {"input_shape": [3, 32, 32], "classes": CLASSES}


@pytest.fixture
def colour(tmp_path):
    torch.manual_seed(0)
    net = ColourNet().eval()
    key = memory.register(net, CARD, name="cert-colour")
    return key, f"folder:{colour_folder(tmp_path / 'shapes', per_class=2)}"


def test_smoothing_certifies_colour_images_of_a_folder(colour):
    key, data = colour
    config = SmoothingConfig(
        model=key,
        data=data,
        split="all",
        n_images=6,
        sigma=0.25,
        n0=10,
        n=60,
        base_attacks=False,
        device="cpu",
    )
    out = drive(run_smoothing(config), keep_events=True)
    result = out.result
    assert len(result.images) == 6
    # the very images the sweep would read (same loader, seed and subset)
    from advstudio.core.models.registry import load_model

    model = load_model(key, "cpu")
    expect = job_images(data, "all", 6, config.seed, model, "none")
    assert [im.label for im in result.images] == expect.y.tolist()
    with torch.no_grad():
        base = model(expect.x).argmax(1).tolist()
    assert [im.base_prediction for im in result.images] == base
    assert all(im.radius >= 0 for im in result.images)
    logs = " ".join(e.text for e in out.events if type(e).__name__ == "Log")
    assert "32×32 RGB" in logs  # the job says what it read


def test_ibp_verifies_colour_images_and_never_beats_pgd(colour):
    _, data = colour
    torch.manual_seed(0)
    key = memory.register(ColourNet().body.eval(), CARD, name="cert-colour-layers")  # IBP's layers
    config = IbpConfig(model=key, data=data, split="all", n_images=8, eps=0.01, device="cpu")
    result = drive(run_ibp(config)).result
    assert result.n_images == 8
    assert result.verified_accuracy <= result.pgd_accuracy <= result.clean_accuracy


def test_a_bad_data_set_is_refused_in_the_validate_dialect():
    from advstudio.core.errors import ConfigError

    with pytest.raises(ConfigError, match="^data must be"):
        SmoothingConfig(data="nowhere:at-all")
    with pytest.raises(ConfigError, match="^split must be"):
        IbpConfig(split="sideways")
