"""The robustness yardstick, the configs and the shared helpers of the defence jobs."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks import fgsm, pgd
from advstudio.core.defence import ARCHS, TrainConfig, robust_accuracy
from advstudio.core.defence.common import (
    PrivateRng,
    atomic_save,
    heldout_digits,
    load_checkpoint,
    save_checkpoint,
)
from advstudio.core.defence.robustness import iter_robust_accuracy
from advstudio.core.errors import CheckpointError, ConfigError
from advstudio.core.jobs import Progress
from advstudio.core.models.builders import architecture_names


def test_robust_accuracy_matches_the_attacks_computed_directly(cnn):
    x, y = heldout_digits(60, seed=0)
    eps = 0.15
    got = robust_accuracy(
        cnn, x, y, eps, pgd_steps=5, batch_size=25, generator=torch.Generator().manual_seed(1)
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        clean = (cnn(x).argmax(1) == y).float().mean().item()
        fgsm_acc = (cnn(fgsm(cnn, x, y, eps)).argmax(1) == y).float().mean().item()
        pgd_acc = sum(
            int(
                (
                    cnn(pgd(cnn, xb, yb, eps, alpha=eps / 10, steps=5, generator=g)).argmax(1) == yb
                ).sum()
            )
            for xb, yb in zip(x.split(25), y.split(25))
        ) / len(x)
    assert got == pytest.approx({"clean_acc": clean, "fgsm_acc": fgsm_acc, "pgd_acc": pgd_acc})
    assert got["clean_acc"] > max(got["fgsm_acc"], got["pgd_acc"])


def test_robust_accuracy_at_eps_zero_is_clean_accuracy_and_modes_are_restored(cnn):
    x, y = heldout_digits(40, seed=2)
    cnn.train()
    try:
        got = robust_accuracy(cnn, x, y, 0.0, attacks=("pgd", "fgsm", "clean"))
        assert cnn.training
    finally:
        cnn.eval()
    assert got["clean_acc"] == got["fgsm_acc"] == got["pgd_acc"] > 0.9
    assert robust_accuracy(cnn, x, y, 0.0, attacks=("clean",)).keys() == {"clean_acc"}


def test_progress_is_reported_per_batch(cnn):
    x, y = heldout_digits(30, seed=0)
    job = iter_robust_accuracy(cnn, x, y, 0.1, attacks=("clean",), batch_size=12)
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            result = stop.value
            break
    assert [(e.done, e.total) for e in events] == [(12, 30), (24, 30), (30, 30)]
    assert all(isinstance(e, Progress) for e in events) and "clean_acc" in result


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attacks": ("cw",)}, "unknown attack 'cw' for the robustness evaluation; allowed: clean"),
        ({"eps": 2.0}, r"eps must be in \[0, 1\]"),
        ({"pgd_steps": 0}, "pgd_steps must be a whole number >= 1"),
    ],
)
def test_robust_accuracy_validation(cnn, kwargs, message):
    x, y = heldout_digits(4)
    args = {"eps": 0.1, **kwargs}
    eps = args.pop("eps")
    with pytest.raises(ConfigError, match=message):
        robust_accuracy(cnn, x, y, eps, **args)


def test_heldout_digits_are_a_seeded_random_subset():
    x, y = heldout_digits(100, seed=0)
    assert x.shape == (100, 1, 28, 28) and len(set(y.tolist())) == 10
    assert torch.equal(heldout_digits(100, seed=0)[1], y)
    assert not torch.equal(heldout_digits(100, seed=1)[1], y)


# ----------------------------------------------------------------------------- configs


def test_config_architectures_are_the_registry_ones():
    assert ARCHS == tuple(architecture_names())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "vgg"}, "arch must be one of digits-cnn, digits-mlp, small-cnn"),
        (
            {"recipe": "mart"},
            "recipe must be one of standard, fgsm, fgsm-rs, pgd, noise, ibp, trades, not 'mart'",
        ),
        ({"eps": 1.5}, r"eps must be in \[0, 1\], not 1.5 \(pixel scale\)"),
        ({"eps": -0.1}, r"eps must be in \[0, 1\]"),
        ({"eps": float("nan")}, r"eps must be in \[0, 1\]"),
        (
            {"recipe": "pgd", "eps": 0.0},
            r"eps must be in \(0, 1\], not 0.0 \(the 'pgd' recipe's attack radius",
        ),
        (
            {"alpha_mix": 1.2},
            r"alpha_mix must be in \[0, 1\], not 1.2 \(weight of the clean loss\)",
        ),
        ({"epochs": 0}, "epochs must be a whole number >= 1, not 0"),
        ({"epochs": 2.5}, "epochs must be a whole number >= 1, not 2.5"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, not 0"),
        ({"pgd_steps": 0}, "pgd_steps must be a whole number >= 1, not 0"),
        ({"eval_images": -1}, "eval_images must be a whole number >= 0, not -1"),
        ({"eval_every": 0}, "eval_every must be a whole number >= 1, not 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0, not 0.0"),
        ({"lr": float("inf")}, "lr must be a finite number > 0, not inf"),
        ({"max_loss": 0}, "max_loss must be a finite number > 0, not 0"),
        ({"resume": True}, "resume needs a checkpoint_path to resume from"),
    ],
)
def test_train_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_configs_build_from_plain_values():
    import dataclasses

    from advstudio.core.defence import DetectorConfig, VatConfig

    for cls in (TrainConfig, VatConfig, DetectorConfig):
        config = cls()
        assert cls(**dataclasses.asdict(config)) == config
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.seed = 1


# ----------------------------------------------------------------------------- files, rng


def test_atomic_save_replaces_whole_files_only(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "w.pt"
    atomic_save({"a": torch.ones(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"a": torch.zeros(2)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.pt"]  # no .part left
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))  # old file kept


def test_checkpoint_kind_and_header_are_checked(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, "vat", {"arch": "digits-cnn", "x": torch.ones(1)})
    assert load_checkpoint(path, "vat", expect={"arch": "digits-cnn"})["x"].item() == 1.0
    with pytest.raises(CheckpointError, match="a checkpoint of a 'vat' job, not of a 'classifier"):
        load_checkpoint(path, "classifier-training")
    with pytest.raises(CheckpointError, match="arch = 'digits-cnn', but this run has arch = 'x'"):
        load_checkpoint(path, "vat", expect={"arch": "x"})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable advstudio checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", "vat")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt", "vat")


def test_private_rng_is_its_own_stream_and_leaves_the_global_one_alone():
    torch.manual_seed(123)
    outside = torch.get_rng_state()
    rng_a, rng_b = PrivateRng(5, torch.device("cpu")), PrivateRng(5, torch.device("cpu"))
    with rng_a:
        first = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), outside)
    with rng_b:
        assert torch.equal(torch.rand(3), first)  # same seed, same stream
    with rng_a:
        second = torch.rand(3)  # the stream goes on where it stopped
    assert not torch.equal(first, second)
    restored = PrivateRng(0, torch.device("cpu"))
    restored.load_state_dict(rng_b.state_dict())
    with restored:
        assert torch.equal(torch.rand(3), second)
    assert torch.equal(torch.get_rng_state(), outside)
