"""In-memory models: an ``nn.Module`` of the user's session with its card, registered under
``memory:<name>``, taken by the registry, the model list and every job config directly."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks.robust import RobustConfig, run_robust
from advstudio.core.attacks.sweep import SweepConfig, run_sweep
from advstudio.core.data.sets import load_dataset
from advstudio.core.errors import ConfigError, ModelLoadError
from advstudio.core.evaluate import EvaluateConfig, evaluate
from advstudio.core.jobkinds import build_config, config_to_dict
from advstudio.core.jobs import drive
from advstudio.core.models import memory
from advstudio.core.models.card import ModelCard
from advstudio.core.models.registry import list_models, load_model
from tests.core.colour_data import CLASSES, ColourNet, colour_folder

CARD = {"input_shape": [3, 32, 32], "classes": CLASSES}


@pytest.fixture(autouse=True)
def _forget_registrations():
    before = set(memory.registered())
    yield
    for key in set(memory.registered()) - before:
        memory.unregister(key)


def _net(seed: int = 0) -> ColourNet:
    torch.manual_seed(seed)
    return ColourNet()


def test_a_registered_module_loads_as_a_classifier_of_its_card_and_is_listed():
    net = _net()
    key = memory.register(net, CARD, name="shapes")
    assert key == "memory:shapes"
    clf = load_model(key, "cpu")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():  # no mean/std in the card: the module sees the pixels as they are
        assert torch.equal(clf(x), net(x))
    assert clf.class_names == CLASSES and clf.input_shape == (3, 32, 32)
    spec = {s.key: s for s in list_models()}[key]
    assert (spec.source, spec.input_shape, spec.num_classes) == ("memory", (3, 32, 32), 10)
    # the same module again keeps its key; another module under a default name gets a suffix
    assert memory.register(net, CARD) == key
    assert memory.register(_net(1), CARD) == "memory:ColourNet"
    assert memory.register(_net(2), CARD) == "memory:ColourNet-2"


def test_a_module_needs_a_card_and_an_unknown_key_says_where_models_live():
    with pytest.raises(ConfigError, match="no model card: give its input_shape, classes"):
        memory.register(_net(), None)
    with pytest.raises(ConfigError, match="lacks classes"):
        memory.register(_net(), {"input_shape": [3, 32, 32]})
    with pytest.raises(ModelLoadError, match="exist only in the session that registered them"):
        load_model("memory:nobody", "cpu")
    with pytest.raises(ConfigError, match="no in-memory model 'memory:nobody'"):
        SweepConfig(model="memory:nobody")


def test_a_job_config_takes_the_module_and_records_its_key_and_card():
    net = _net()
    config = SweepConfig(model=net, card=CARD, attacks=("fgsm",), epsilons=(0.1,))
    assert config.model.startswith("memory:ColourNet")
    assert config.card == ModelCard.from_dict(CARD)
    values = config_to_dict(config)  # what a run records: plain values, the card as a table
    assert values["model"] == config.model and values["card"]["input_shape"] == [3, 32, 32]
    assert "mean" not in values["card"]  # None is left out (TOML has no null)
    assert build_config("sweep", values) == config  # a rerun in this session: the same model
    # a registered key alone gets its card from the registry
    assert SweepConfig(model=config.model).card == config.card
    with pytest.raises(ConfigError, match="has its own card"):
        SweepConfig(model="digits-cnn", card=CARD)


def test_sweep_robust_and_evaluate_run_on_an_in_memory_module(tmp_path):
    folder = colour_folder(tmp_path / "shapes", per_class=2, junk=False)
    net = _net()
    common = {"dataset": f"folder:{folder}", "split": "all", "device": "cpu"}
    sweep = drive(
        run_sweep(
            SweepConfig(
                model=net,
                card=CARD,
                attacks=("fgsm", "pgd"),
                epsilons=(0.0, 0.05),
                n_images=20,
                batch_size=8,
                **common,
            )
        )
    ).result
    data = load_dataset(f"folder:{folder}", "all")  # all 20 images, in the job's order
    assert len(data.x) == sweep.n_images == 20
    with torch.no_grad():
        clean = net(data.x).argmax(1)
    assert sweep.clean_predictions == clean.tolist()
    assert sweep.curves["fgsm"].predictions[0] == sweep.clean_predictions  # eps 0
    assert sweep.clean_accuracy == pytest.approx(float((clean == data.y).float().mean()))
    robust = drive(
        run_robust(
            RobustConfig(model=net, card=CARD, eps=0.05, n_images=20, dry_run=True, **common)
        )
    ).result
    assert len(robust.outcomes) == robust.n_images == 8
    accuracy = drive(evaluate(EvaluateConfig(model=net, card=CARD, **common))).result.accuracy
    assert accuracy == pytest.approx(sweep.clean_accuracy)
