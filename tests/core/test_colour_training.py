"""Training on colour (issue #17): the Defence, Poisoning, VAT and detector jobs build any
architecture the registry knows for the data set's own shape and classes, on the synthetic
colour shapes of ``tests/core/colour_data.py`` (10 classes, 3×32×32, made in ``tmp_path``)."""

from __future__ import annotations

import math

import pytest
import torch

from advstudio.core.defence.common import scheduled_lr
from advstudio.core.defence.config import TrainConfig, VatConfig
from advstudio.core.defence.defaults import (
    DIGIT_DEFAULTS,
    archs_for,
    check_arch_data,
    defaults_for,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Log, drive
from advstudio.core.models.builders import architecture_names, build
from advstudio.core.models.names import ALL_ARCHITECTURES, fit_problem
from tests.core.colour_data import CLASSES, colour_folder

CHANCE = 1 / len(CLASSES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """30 shapes per class: 24 train, 6 test (the folder's fixed 20 % test split)."""
    return colour_folder(tmp_path_factory.mktemp("shapes"), per_class=30, junk=False)


@pytest.fixture(scope="module")
def pgd_run(folder, tmp_path_factory):
    """A PGD-AT run of small-cnn at eps 8/255 on the colour shapes, saved with its card."""
    from advstudio.core.defence.train import train_classifier

    path = tmp_path_factory.mktemp("model") / "shapes.pt"
    config = TrainConfig(
        arch="small-cnn",
        recipe="pgd",
        dataset=f"folder:{folder}",
        eps=8 / 255,
        pgd_steps=2,
        epochs=4,
        batch_size=32,
        lr=3e-3,
        eval_every=4,
        eval_pgd_steps=5,
        device="cpu",
        save_path=str(path),
    )
    return drive(train_classifier(config), keep_events=True), path


# ----------------------------------------------------------------------------- configs


def test_the_names_are_the_registry_ones_and_each_builds_for_its_shape():
    assert ALL_ARCHITECTURES == tuple(architecture_names())
    for arch, shape, classes in (
        ("small-cnn", (3, 20, 24), 7),
        ("small-cnn", (1, 28, 28), 3),
        ("preact-resnet18", (3, 32, 32), 100),
    ):
        assert fit_problem(arch, shape, classes) is None
        with torch.no_grad():
            net = build(arch, classes, shape).eval()
            assert net(torch.rand(2, *shape)).shape == (2, classes)


@pytest.mark.parametrize(
    "arch, dataset, message",
    [
        (
            "digits-cnn",
            "torchvision:cifar10",
            "digits-cnn takes 1×28×28 grey digits, not 32×32 RGB",
        ),
        ("digits-mlp", "torchvision:cifar100", "not 32×32 RGB images of 100 classes"),
        ("preact-resnet18", "torchvision:mnist", "takes RGB .3-channel. images, not 28×28 grey"),
        ("resnet18", "digits", "takes RGB"),
        ("wrn-28-10", "torchvision:fashion-mnist", "choose small-cnn"),
        ("vgg", "digits", "arch must be one of digits-cnn, digits-mlp, small-cnn"),
    ],
)
def test_an_architecture_that_does_not_fit_the_data_is_refused(arch, dataset, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(arch=arch, dataset=dataset)
    with pytest.raises(ConfigError, match=message):
        VatConfig(arch=arch, dataset=dataset)
    from advstudio.core.poisoning.job import PoisonConfig

    with pytest.raises(ConfigError, match=message):
        PoisonConfig(arch=arch, dataset=dataset)


@pytest.mark.parametrize(
    "arch, dataset",
    [
        ("small-cnn", "torchvision:cifar10"),
        ("small-cnn", "digits"),
        ("preact-resnet18", "torchvision:cifar10"),
        ("cifar-resnet18", "torchvision:svhn"),
        ("wrn-28-10", "torchvision:cifar100"),
        ("resnet18", "torchvision:cifar10"),
        ("digits-cnn", "folder:/anywhere"),  # a folder's shape is checked when it is loaded
    ],
)
def test_an_architecture_that_fits_is_accepted(arch, dataset):
    assert TrainConfig(arch=arch, dataset=dataset).arch == arch
    check_arch_data(arch, dataset)


def test_the_architectures_offered_fit_the_set():
    cifar = archs_for("torchvision:cifar10")
    assert cifar[:5] == ["small-cnn", "preact-resnet18", "cifar-resnet18", "wrn-28-10", "wrn-34-10"]
    assert "resnet18" in cifar and "digits-cnn" not in cifar
    assert archs_for("digits") == ["digits-cnn", "digits-mlp", "small-cnn"]
    assert archs_for("folder:/x", (3, 16, 16), 5)[:2] == ["small-cnn", "preact-resnet18"]
    assert "resnet18" not in archs_for("folder:/x", (3, 16, 16), 5)  # torchvision: >= 32×32
    assert archs_for("folder:/x", (1, 20, 20), 12) == ["small-cnn"]  # 12 > the digit nets' 10


def test_defaults_per_data_set():
    # the digits: today's settings, which are TrainConfig's own defaults
    config = TrainConfig()
    assert defaults_for("digits", "digits-cnn") == DIGIT_DEFAULTS
    assert {k: getattr(config, k) for k in DIGIT_DEFAULTS} == DIGIT_DEFAULTS
    # Rice et al. 2020 / RobustBench's PGD-AT baseline for a CIFAR-10 ResNet
    rice = defaults_for("torchvision:cifar10", "preact-resnet18")
    assert rice == {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "piecewise",
        "batch_size": 128,
        "epochs": 200,
        "eps": 8 / 255,
        "pgd_steps": 10,
    }
    made = TrainConfig(arch="preact-resnet18", dataset="torchvision:cifar10", recipe="pgd", **rice)
    assert made.eps / 4 == pytest.approx(2 / 255)  # the "pgd" recipe's step: 2/255
    assert defaults_for("torchvision:svhn", "wrn-28-10")["lr"] == 0.01
    small = defaults_for("torchvision:cifar10", "small-cnn")
    assert (small["optimizer"], small["eps"]) == ("adam", 8 / 255)
    assert defaults_for("torchvision:fashion-mnist", "small-cnn")["eps"] == 0.1


def test_the_schedules_closed_forms():
    assert [scheduled_lr(0.1, "constant", s, 100) for s in (0, 99)] == [0.1, 0.1]
    assert [scheduled_lr(0.1, "piecewise", s, 100) for s in (0, 49, 50, 74, 75, 99)] == [
        pytest.approx(v) for v in (0.1, 0.1, 0.01, 0.01, 0.001, 0.001)
    ]
    assert scheduled_lr(0.1, "cosine", 0, 100) == pytest.approx(0.1)
    assert scheduled_lr(0.1, "cosine", 50, 100) == pytest.approx(0.05)
    assert scheduled_lr(0.1, "cosine", 25, 100) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(ConfigError, match="schedule must be one of constant, piecewise, cosine"):
        TrainConfig(schedule="step")
    with pytest.raises(ConfigError, match="optimizer must be one of adam, sgd"):
        TrainConfig(optimizer="rmsprop")


def test_sgd_with_a_schedule_sets_each_steps_rate():
    from advstudio.core.defence.train import AdversarialTrainer

    config = TrainConfig(
        arch="small-cnn",
        dataset="torchvision:cifar10",
        optimizer="sgd",
        lr=0.1,
        weight_decay=5e-4,
        schedule="piecewise",
    )
    trainer = AdversarialTrainer(config, "cpu", input_shape=(3, 8, 8))
    trainer.total_steps = 4
    opt = trainer.optimizer
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.defaults["momentum"], opt.defaults["weight_decay"]) == (0.9, 5e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, generator=g), torch.arange(6) % 10
    rates = []
    for _ in range(4):
        trainer.train_step(x, y)
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_the_digit_nets_still_train_as_before_with_adam_and_no_schedule():
    from advstudio.core.defence.train import AdversarialTrainer

    trainer = AdversarialTrainer(TrainConfig(), "cpu")
    opt = trainer.optimizer
    assert type(opt) is torch.optim.Adam and opt.defaults["weight_decay"] == 0
    assert opt.defaults["lr"] == 1e-3 and trainer.model.input_shape == (1, 28, 28)


@pytest.mark.parametrize(
    "arch, settings",
    [
        ("digits-mlp", {}),  # the defaults: plain Adam at 1e-3, as before
        ("small-cnn", dict(optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="cosine")),
    ],
)
def test_a_training_step_is_a_plain_pytorch_step(arch, settings):
    """Bit for bit what a hand-written loop does: cross-entropy in train mode, then
    ``torch.optim.Adam`` (or SGD at the schedule's rate for the step)."""
    import copy

    import torch.nn.functional as F

    from advstudio.core.defence.common import PrivateRng
    from advstudio.core.defence.train import AdversarialTrainer

    config = TrainConfig(arch=arch, **settings)
    trainer = AdversarialTrainer(config, "cpu")
    trainer.total_steps = 3
    net = copy.deepcopy(trainer.model)
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    dropout = PrivateRng(config.seed + 1, torch.device("cpu"))
    g = torch.Generator().manual_seed(3)
    for step in range(3):
        x, y = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
        trainer.train_step(x, y)
        with dropout:
            net.train()
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
        if config.schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * step / 3))
        opt.step()
    for key, value in net.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key], value), key


# ----------------------------------------------------------------------------- the jobs


def test_pgd_training_of_a_small_colour_net_learns_and_saves_its_card(pgd_run, folder):
    from advstudio.core.models.card import read_card
    from advstudio.core.models.registry import load_model
    from advstudio.core.runs.models import model_card

    out, path = pgd_run
    r = out.result
    assert r.input_shape == (3, 32, 32) and r.class_names == sorted(CLASSES)
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert f"data: folder:{folder} (train), 32×32 RGB, 10 classes, 240 images" in logs
    assert f"data: folder:{folder} (test), 32×32 RGB, 10 classes, 60 images" in logs
    assert r.metrics["clean_acc"] > 2 * CHANCE  # it learns: well above chance
    assert r.metrics["pgd_acc"] > CHANCE
    card = read_card(path)
    assert card.input_shape == (3, 32, 32) and card.classes == tuple(sorted(CLASSES))
    assert card.architecture == "small-cnn" and card.mean is None  # [0, 1] pixels as they are
    loaded = load_model(f"file:{path}")
    assert loaded.input_shape == (3, 32, 32) and loaded.class_names == r.class_names
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), r.classifier()(x))
    kept = model_card(r, "state_dict", "model.pt")  # the run store's card
    assert kept["input_shape"] == [3, 32, 32] and kept["class_names"] == r.class_names


def test_a_digit_net_on_a_colour_folder_is_refused_when_it_loads(folder):
    from advstudio.core.defence.train import train_classifier

    config = TrainConfig(arch="digits-cnn", dataset=f"folder:{folder}", device="cpu")
    with pytest.raises(ConfigError, match="32×32 RGB images, but the digit architectures"):
        drive(train_classifier(config))
    with pytest.raises(ConfigError, match="resnet18 needs images of at least 32×32"):
        check_arch_data("resnet18", f"folder:{folder}", (3, 16, 16), 10)


def test_a_backdoor_in_colour_takes_hold_of_a_small_colour_net(folder):
    from advstudio.core.poisoning.job import PoisonConfig, run_poisoning

    config = PoisonConfig(
        dataset=f"folder:{folder}",
        arch="small-cnn",
        attack="backdoor",
        fraction=0.2,
        target=0,
        trigger_size=6,
        trigger_row=26,
        trigger_col=26,
        trigger_pattern="checker",
        epochs=6,
        batch_size=32,
        lr=3e-3,
        device="cpu",
    )
    out = drive(run_poisoning(config), keep_events=True)
    r = out.result
    assert r.gallery.shape[1:] == (32, 32, 3)  # colour stays colour
    patch = config.trigger().patch().numpy()
    for image in r.gallery:  # the patch is stamped in every channel
        for c in range(3):
            assert (image[26:, 26:, c] == patch).all()
    assert r.n_poisoned == round(0.2 * 240) and r.train.input_shape == (3, 32, 32)
    assert r.clean_acc > 2 * CHANCE
    assert r.attack_success > 0.5  # most triggered test shapes go to the target
    with pytest.raises(ConfigError, match="goes off the edge of the 32x32 images"):
        drive(run_poisoning(PoisonConfig(**{**config.__dict__, "trigger_row": 30})))


def test_vat_on_a_colour_set(folder):
    from advstudio.core.defence.vat import train_vat

    config = VatConfig(
        arch="small-cnn",
        dataset=f"folder:{folder}",
        labels_per_class=4,
        labelled_batch=20,
        unlabelled_batch=40,
        steps=60,
        lr=3e-3,
        eps=1.0,
        eval_every=60,
        device="cpu",
    )
    r = drive(train_vat(config)).result
    assert (r.labelled, r.unlabelled) == (40, 200)  # 4 of each class's 24 training shapes
    assert r.input_shape == (3, 32, 32) and r.class_names == sorted(CLASSES)
    assert r.test_acc > 2 * CHANCE
    assert r.classifier().num_classes == 10


def test_the_detector_guards_a_colour_model(pgd_run, folder, tmp_path):
    from advstudio.core.defence.config import DetectorConfig
    from advstudio.core.defence.detector import load_detector, train_detector

    _, model = pgd_run
    save = tmp_path / "det.pt"
    config = DetectorConfig(
        target=f"file:{model}",
        dataset=f"folder:{folder}",
        attacks=("fgsm",),
        eps=8 / 255,
        train_images=200,
        test_images=60,
        epochs=3,
        batch_size=20,
        device="cpu",
        save_path=str(save),
    )
    r = drive(train_detector(config)).result
    assert r.input_shape == (3, 32, 32)
    assert 0 <= r.metrics["false_alarm_rate"] <= 1 and r.metrics["auc"] > 0.5
    det = load_detector(str(save))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(det(x), r.detector()(x))


def test_the_cli_prints_the_defaults_as_a_config_it_runs(tmp_path, capsys):
    import tomllib

    from advstudio.cli import main
    from advstudio.core.jobkinds import build_config

    assert main(["--defaults", "torchvision:cifar10", "preact-resnet18"]) == 0
    values = tomllib.loads(capsys.readouterr().out)
    assert values.pop("kind") == "train"
    config = build_config("train", values)
    assert (config.arch, config.optimizer, config.lr, config.eps) == (
        "preact-resnet18",
        "sgd",
        0.1,
        8 / 255,
    )
    assert main(["--defaults", "torchvision:cifar10", "digits-cnn"]) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "networks that fit torchvision:cifar10: small-cnn" in err
