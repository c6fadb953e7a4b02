"""The attack catalogue: its entries are consistent, the docs are generated from it, the lab,
sweep and robust accuracy run its attacks exactly as their own tables did, and one registered
toy attack shows up in the lab, the sweep, robust accuracy and the CLI with no other edit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advstudio.cli import EXIT_OK, main
from advstudio.core.attacks import catalogue
from advstudio.core.attacks.blackbox import as_predict, simba
from advstudio.core.attacks.lab import AttackSpec, attack_image
from advstudio.core.attacks.robust import (
    Budget,
    RobustConfig,
    attack_names,
    robust_accuracy,
    robust_attack,
)
from advstudio.core.attacks.sweep import SweepConfig, run_sweep, sweep_images
from advstudio.core.attacks.whitebox import bim, mifgsm, pgd
from advstudio.core.errors import ConfigError
from advstudio.core.jobkinds import build_config
from advstudio.core.jobs import drive
from tests.core.helpers import toy_attack

DOCS = Path(__file__).parents[2] / "docs" / "ATTACKS.md"


@pytest.fixture
def toy():
    with catalogue.registered(toy_attack()) as entry:
        yield entry


@pytest.fixture(scope="module")
def digits():
    return sweep_images(12, seed=7)


def test_every_default_and_context_setting_is_inside_its_range():
    for entry in catalogue.attacks_for():
        for p in entry.params:
            assert p.check(p.default) == p.default, (entry.name, p.name)
        for context in entry.uses:
            entry.resolve(context=context)  # raises if a context's own value is out of range


def test_names_titles_and_labels_are_unique():
    entries = catalogue.attacks_for()
    for key in ("name", "title", "short"):
        values = [getattr(e, key) for e in entries]
        assert len(set(values)) == len(values), key
    with pytest.raises(ConfigError, match="already in the catalogue"):
        catalogue.register(entries[0])


def test_the_lists_are_the_ones_the_lab_sweep_and_robust_had():
    assert catalogue.names(access="white-box", context="lab") == (
        "fgsm",
        "bim",
        "pgd",
        "mifgsm",
        "apgd",
        "deepfool",
        "cw",
        "fab-t",
        "fab-t-l2",
    )
    assert catalogue.names(access="transfer", context="lab") == ("fgsm", "bim", "pgd", "mifgsm")
    assert catalogue.names(access="query", context="lab") == ("nes", "spsa", "simba", "square")
    assert catalogue.names(access="labels", context="lab") == ("hsj",)
    assert catalogue.names(context="sweep") == ("fgsm", "bim", "pgd", "mifgsm")
    assert catalogue.names(budgeted=False) == ("deepfool", "cw", "fab-t", "fab-t-l2", "hsj")
    assert set(attack_names()) == {
        "apgd-ce",
        "apgd-dlr",
        "apgd-t",
        "pgd",
        "fgsm",
        "spsa",
        "simba",
        "square",
        "fab-t",
    }


def test_the_docs_are_the_generated_table():
    text = DOCS.read_text(encoding="utf-8")
    assert text == catalogue.markdown_table(), "refresh it with catalogue.write_docs()"
    for entry in catalogue.attacks_for():
        assert f"| `{entry.name}` |" in text


def test_a_bad_parameter_is_named():
    pgd_entry = catalogue.get("pgd")
    with pytest.raises(ConfigError, match="steps must be a whole number >= 1, not 0"):
        pgd_entry.resolve({"steps": 0})
    with pytest.raises(ConfigError, match="loss must be one of ce, dlr, not 'hinge'"):
        catalogue.get("apgd").resolve({"loss": "hinge"})
    with pytest.raises(ConfigError, match="unknown attack 'nope'; allowed: fgsm, bim"):
        catalogue.get("nope")


@pytest.mark.parametrize(
    "name, attack, divisor, steps",
    [("bim", bim, 4, 10), ("pgd", pgd, 10, 20), ("mifgsm", mifgsm, 10, 10)],
)
def test_sweep_settings_are_the_old_table(cnn, digits, name, attack, divisor, steps):
    """The sweep's old table: BIM 10 steps of eps/4, PGD-20 of eps/10, MI-FGSM 10 of eps/10."""
    x, y = digits
    eps = 0.15
    entry = catalogue.get(name)
    params = {**entry.resolve(context="sweep"), "eps": eps}
    got = entry.run(cnn, x, y, params, generator=torch.Generator().manual_seed(1)).x_adv
    kw = {"generator": torch.Generator().manual_seed(1)} if name == "pgd" else {}
    want = attack(cnn, x, y, eps, alpha=eps / divisor, steps=steps, **kw)
    assert torch.equal(got, want)


def test_robust_pgd_takes_the_budget_and_madrys_step(cnn, digits):
    x, y = digits
    got = robust_attack("pgd")(cnn, x, y, 0.1, Budget(steps=5), 3)
    want = pgd(
        cnn, x, y, 0.1, alpha=2.5 * 0.1 / 5, steps=5, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(got, want)


# --------------------------------------------------------------------------- one toy attack


def test_toy_attack_runs_in_the_lab(cnn, digits, toy):
    x = digits[0][:1]
    assert "toy" in catalogue.names(access="transfer", context="lab")
    spec = AttackSpec(attack="toy", eps=0.2)
    assert spec.params == {"eps": 0.2, "lift": 1.0}
    out = drive(attack_image(cnn, x, spec)).result
    assert torch.equal(out.x_adv, (x + 0.2).clamp(0, 1))
    assert out.queries is None


def test_toy_attack_runs_in_the_sweep(cnn, toy):
    config = SweepConfig(attacks=("toy",), epsilons=(0.0, 0.3), n_images=10)
    curve = drive(run_sweep(config)).result.curves["toy"]
    x, y = sweep_images(10, 0)
    with torch.no_grad():
        want = (cnn((x + 0.3).clamp(0, 1)).argmax(1) == y).float().mean()
    assert curve.accuracy[1] == pytest.approx(float(want))


def test_toy_attack_runs_in_robust_accuracy(cnn, digits, toy):
    x, y = digits
    res = robust_accuracy(cnn, x, y, 0.3, attacks=("toy",))
    with torch.no_grad():
        right = cnn(x).argmax(1) == y
        broken = right & (cnn((x + 0.3).clamp(0, 1)).argmax(1) != y)
    assert res.broken == {"toy": int(broken.sum())}


def test_toy_attack_is_listed_and_validated_by_the_cli(capsys, toy):
    assert main(["--list"]) == EXIT_OK
    assert "toy        Toy (lift every pixel) [Linf; white-box, transfer; lab, sweep, robust]" in (
        capsys.readouterr().out
    )
    assert build_config("sweep", {"attacks": ["toy"]}).attacks == ("toy",)
    catalogue.unregister("toy")
    with pytest.raises(ConfigError, match="unknown attack 'toy'"):
        build_config("sweep", {"attacks": ["toy"]})


def test_iterative_attacks_check_their_labels_at_the_first_step(cnn, digits):
    x = digits[0][:2]
    with pytest.raises(ConfigError, match=r"label 10 is out of range.*\[0, 9\]"):
        bim(cnn, x, 10, 0.1, alpha=0.01, steps=3)


@pytest.mark.parametrize(
    "config, values, message",
    [
        (SweepConfig, {"targeted": 1}, "targeted must be true or false, not 1"),
        (SweepConfig, {"n_images": True}, "n_images must be a whole number >= 1, not True"),
        (SweepConfig, {"device": "gpu"}, "device must be one of auto, cpu"),
        (RobustConfig, {"batch_size": 2.0}, "batch_size must be a whole number >= 1, not 2.0"),
        (RobustConfig, {"dry_run": "yes"}, "dry_run must be true or false"),
    ],
)
def test_attack_configs_speak_the_validation_dialect(config, values, message):
    with pytest.raises(ConfigError, match=message):
        config(**values)


def test_lab_pgd_and_simba_get_the_generator_and_step_they_had(cnn, digits):
    """The lab's old special cases, now in the entries: PGD draws its start from the spec's
    seeded generator; SimBA's per-pixel step is the spec's eps."""
    x, y = digits[0][:1], int(digits[1][0])
    label = torch.tensor([y])
    spec = AttackSpec(attack="pgd", eps=0.1, steps=5, seed=4, label=y)
    out = drive(attack_image(cnn, x, spec)).result
    want = pgd(cnn, x, label, 0.1, alpha=0.01, steps=5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.x_adv, want)
    spec = AttackSpec(attack="simba", access="query", eps=0.3, max_queries=200, seed=4, label=y)
    out = drive(attack_image(cnn, x, spec)).result
    res = simba(
        as_predict(cnn),
        x,
        label,
        step=0.3,
        max_queries=200,
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(out.x_adv, res.x_adv) and out.queries == int(res.queries[0])
