"""The ε sweep, robust accuracy and evaluate on a user's colour folder: a tiny colour CNN (in
the ``Classifier`` wrapper, 3×32×32) against the same images attacked directly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advstudio.core.attacks.robust import RobustConfig, robust_accuracy, run_robust
from advstudio.core.attacks.sweep import SweepConfig, run_sweep
from advstudio.core.data.sets import load_dataset
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Log, drive
from tests.core.colour_data import colour_classifier, colour_folder

KEY = "test:colour-net"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("shapes"), per_class=4)


@pytest.fixture(scope="module")
def trained(folder):
    """The colour net after 60 Adam steps on the whole folder (good, not perfect)."""
    model = colour_classifier()
    data = load_dataset(f"folder:{folder}", "all")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()


@pytest.fixture
def registry(monkeypatch, trained):
    """``load_model(KEY)`` gives the trained colour net (the jobs take registry keys)."""
    from advstudio.core.models import registry as reg

    real = reg.load_model
    monkeypatch.setattr(
        reg,
        "load_model",
        lambda key, device="cpu", card=None: trained if key == KEY else real(key, device, card),
    )
    return trained


def _fgsm_accuracy(model, x, y, eps):
    """FGSM by hand: x + eps sign(d CE / dx), clipped to [0, 1]."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    with torch.no_grad():
        adv = (x + eps * grad.sign()).clamp(0, 1)
        return int((model(adv).argmax(1) == y).sum()) / len(y)


def test_the_sweep_on_a_colour_folder_equals_a_direct_fgsm(folder, registry):
    config = SweepConfig(
        model=KEY,
        dataset=f"folder:{folder}",
        split="all",
        n_images=40,
        epsilons=(0, 0.02, 0.1),
        batch_size=64,
        device="cpu",
        seed=2,
    )
    out = drive(run_sweep(config), keep_events=True)
    data = load_dataset(f"folder:{folder}", "all")  # all 40 readable images, in order
    with torch.no_grad():
        clean = int((registry(data.x).argmax(1) == data.y).sum()) / len(data.y)
    assert clean > 0.2  # the net learned something, so the curve means something
    curve = out.result.curves["fgsm"]
    assert out.result.n_images == 40 and out.result.clean_accuracy == pytest.approx(clean)
    expect = [clean] + [_fgsm_accuracy(registry, data.x, data.y, e) for e in (0.02, 0.1)]
    assert curve.accuracy == pytest.approx(expect, abs=1e-9)
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert any("32×32 RGB, 10 classes, 40 images" in t for t in logs)
    assert any("2 unreadable file(s) skipped" in t and "broken.png" in t for t in logs)


def test_robust_accuracy_on_a_colour_folder_equals_a_direct_call(folder, registry):
    config = RobustConfig(
        model=KEY,
        dataset=f"folder:{folder}",
        split="all",
        n_images=12,
        eps=0.05,
        attacks=("apgd-ce", "fgsm"),
        steps=5,
        device="cpu",
        seed=1,
    )
    job = drive(run_robust(config)).result
    data = load_dataset(f"folder:{folder}", "all", limit=12, seed=1)
    direct = robust_accuracy(registry, data.x, data.y, 0.05, ("apgd-ce", "fgsm"), steps=5, seed=1)
    assert job.n_images == 12 and job.outcomes == direct.outcomes
    assert (job.clean_accuracy, job.robust_accuracy, job.fgsm_accuracy) == (
        direct.clean_accuracy,
        direct.robust_accuracy,
        direct.fgsm_accuracy,
    )


def test_a_set_that_does_not_fit_the_model_is_refused_unless_fit_is_asked(folder, registry):
    grey = SweepConfig(model="digits-cnn", dataset=f"folder:{folder}", n_images=4, device="cpu")
    with pytest.raises(ConfigError, match="images are 32×32 RGB but the model takes 28×28 grey"):
        drive(run_sweep(grey))
    out = drive(
        run_sweep(
            SweepConfig(
                model="digits-cnn",
                dataset=f"folder:{folder}",
                split="all",
                n_images=4,
                fit="resize",
                device="cpu",
                epsilons=(0,),
            )
        ),
        keep_events=True,
    )
    assert out.result.n_images == 4
    assert any(
        "converted RGB → grey (ITU-R 601 luma); resized 32×32 → 28×28" in e.text
        for e in out.events
        if isinstance(e, Log)
    )


def test_more_images_than_the_set_holds_is_refused(folder, registry):
    with pytest.raises(ConfigError, match="n_images must be at most 40 .*, not 41"):
        drive(
            run_sweep(
                SweepConfig(
                    model=KEY, dataset=f"folder:{folder}", split="all", n_images=41, device="cpu"
                )
            )
        )


def test_a_set_with_more_classes_than_outputs_is_refused(tmp_path, monkeypatch):
    from advstudio.core.models import registry as reg
    from advstudio.core.models.classifier import Classifier
    from tests.core.colour_data import ColourNet

    small = Classifier(ColourNet(classes=3), (3, 32, 32), ["a", "b", "c"])
    monkeypatch.setattr(reg, "load_model", lambda key, device="cpu", card=None: small)
    root = colour_folder(tmp_path / "s", per_class=1, junk=False)
    with pytest.raises(ConfigError, match="has 10 classes but the model has 3 outputs"):
        drive(
            run_robust(
                RobustConfig(
                    model=KEY, dataset=f"folder:{root}", split="all", n_images=5, device="cpu"
                )
            )
        )


@pytest.mark.parametrize(
    "field, bad, message",
    [
        ("dataset", "cifar", "dataset must be one of digits"),
        ("split", "val", "split must be one of train, test, all"),
        ("fit", "stretch", "fit must be one of none, resize, center-crop"),
    ],
)
def test_the_configs_check_the_data_fields(field, bad, message):
    for cls in (SweepConfig, RobustConfig):
        with pytest.raises(ConfigError, match=message):
            cls(**{field: bad})


def test_evaluate_on_a_colour_folder_counts_what_a_direct_call_counts(folder, registry):
    from advstudio.core.evaluate import EvaluateConfig, evaluate

    out = drive(
        evaluate(
            EvaluateConfig(
                model=KEY, dataset=f"folder:{folder}", split="test", batch_size=3, device="cpu"
            )
        ),
        keep_events=True,
    )
    data = load_dataset(f"folder:{folder}", "test")
    with torch.no_grad():
        pred = registry(data.x).argmax(1)
    assert out.result.n == len(data.x) == 10  # 1 of the 4 (+ junk) per class is the test split
    assert out.result.accuracy == int((pred == data.y).sum()) / 10
    confusion = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(data.y.tolist(), pred.tolist()):
        confusion[t, p] += 1
    assert out.result.confusion == confusion.tolist()
    assert any("data: folder:" in e.text for e in out.events if isinstance(e, Log))


def _grey_folder(root, per_class=6, size=20):
    """Two grey classes (dark, bright) of ``size``×``size`` images, plus a corrupt file."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("bright", 215)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(
                np.clip(value + rng.integers(-20, 20, (size, size)), 0, 255).astype(np.uint8)
            ).save(root / name / f"{i}.png")
    (root / "dark" / "bad.png").write_bytes(b"not a png")
    return root


def test_vat_splits_labels_from_any_grey_set_and_refuses_colour(tmp_path, folder):
    from advstudio.core.defence import VatConfig, train_vat
    from advstudio.core.defence.vat import split_labelled

    root = _grey_folder(tmp_path / "g", per_class=10)
    config = VatConfig(
        arch="digits-mlp",
        dataset=f"folder:{root}",
        labels_per_class=2,
        labelled_batch=4,
        unlabelled_batch=8,
        steps=2,
        eval_every=1,
        eval_images=4,
        device="cpu",
    )
    out = drive(train_vat(config), keep_events=True)
    train = load_dataset(f"folder:{root}", "train")  # 8 per class
    labelled, unlabelled = split_labelled(train.y, 2, config.seed, classes=2)
    assert out.result.labelled == len(labelled) == 4 and len(unlabelled) == 12
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert "fitted to the digit networks: resized 20×20 → 28×28" in logs
    assert any("bad.png" in t for t in logs)
    with pytest.raises(ConfigError, match="32×32 RGB images, but the networks this job builds"):
        drive(train_vat(VatConfig(dataset=f"folder:{folder}", device="cpu")))


def test_the_detector_trains_on_a_grey_folder(tmp_path):
    from advstudio.core.defence import DetectorConfig, train_detector

    root = _grey_folder(tmp_path / "g")
    out = drive(
        train_detector(
            DetectorConfig(
                dataset=f"folder:{root}",
                attacks=("fgsm",),
                train_images=6,
                test_images=4,
                epochs=1,
                batch_size=3,
                device="cpu",
            )
        ),
        keep_events=True,
    )
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert any("6 training and 2 test images" in t for t in logs)  # 20 % of 6 per class
    assert 0.0 <= out.result.metrics["detection_rate"] <= 1.0


def test_poisoned_views_on_a_colour_set(folder):
    from advstudio.core.poisoning.attacks import backdoor, label_flip
    from advstudio.core.poisoning.triggers import Trigger

    data = load_dataset(f"folder:{folder}", "all")
    trigger = Trigger(size=4, row=28, col=28, pattern="checker", value=1.0)
    view = backdoor(
        data.x, data.y, 0.25, trigger=trigger, target=3, seed=0, num_classes=len(data.class_names)
    )
    x, y = view.materialize()
    rows = view.poisoned_rows
    assert view.n_poisoned == 10 and x.shape == (40, 3, 32, 32)
    assert (y[rows] == 3).all() and (data.y[rows] != 3).all()
    patch = trigger.patch()
    assert torch.equal(x[rows][:, :, 28:, 28:], patch.expand(len(rows), 3, 4, 4))
    clean = torch.ones(40, dtype=torch.bool)
    clean[rows] = False
    assert torch.equal(x[clean], data.x[clean])  # the others untouched, colour intact
    with pytest.raises(ConfigError, match="row must be in 0..28"):
        Trigger(size=4, row=29, col=0).check_fits(*data.shape[1:])
    flipped = label_flip(data.x, data.y, 0.5, seed=1, num_classes=10)
    fy = flipped.materialize()[1]
    assert int((fy != data.y).sum()) == flipped.n_poisoned == 20


def test_the_poisoning_job_on_a_grey_folder_and_a_colour_one(tmp_path, folder):
    from advstudio.core.poisoning.job import PoisonConfig, run_poisoning

    root = _grey_folder(tmp_path / "g", per_class=10)
    out = drive(
        run_poisoning(
            PoisonConfig(
                dataset=f"folder:{root}",
                attack="backdoor",
                fraction=0.2,
                target=0,
                arch="digits-mlp",
                epochs=1,
                batch_size=4,
                device="cpu",
            )
        ),
        keep_events=True,
    )
    logs = [e.text for e in out.events if isinstance(e, Log)]
    assert "backdoor: 3 of 16 training images poisoned" in logs  # 20 % of 16, class 0 excluded
    assert "fitted to the digit networks: resized 20×20 → 28×28" in logs
    assert out.result.n_train == 16 and 0.0 <= out.result.clean_acc <= 1.0
    with pytest.raises(ConfigError, match="32×32 RGB images"):
        drive(run_poisoning(PoisonConfig(dataset=f"folder:{folder}", device="cpu")))
