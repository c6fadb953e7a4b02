"""One validation dialect: every config refuses the same mistakes with the same message shape."""

from __future__ import annotations

import dataclasses
import math

import pytest

from advstudio.core import validate as v
from advstudio.core.errors import ConfigError
from advstudio.core.jobkinds import JOB_KINDS, build_config


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: v.whole("steps", True, 1), "steps must be a whole number >= 1, not True"),
        (lambda: v.whole("steps", 2.0, 1), "steps must be a whole number >= 1, not 2.0"),
        (lambda: v.whole("k", 11, 0, 9), "k must be a whole number from 0 to 9, not 11"),
        (lambda: v.number("lr", 0, above=0), "lr must be a finite number > 0, not 0"),
        (lambda: v.number("lr", math.inf, above=0), "lr must be a finite number > 0, not inf"),
        (lambda: v.number("eps", False, 0, 1), "eps must be in [0, 1], not False"),
        (
            lambda: v.number("eps", 2, high=1, above=0, hint="pixels"),
            "eps must be in (0, 1], not 2 (pixels)",
        ),
        (lambda: v.number("p", -1, 0, below=1), "p must be in [0, 1), not -1"),
        (lambda: v.flag("resume", 1), "resume must be true or false, not 1"),
        (lambda: v.choice("arch", "x", ("a", "b")), "arch must be one of a, b, not 'x'"),
        (
            lambda: v.choices("attacks", "fgsm", ("fgsm", "pgd")),
            "attacks must be a list of names from fgsm, pgd, not 'fgsm' (write ['fgsm'] for one)",
        ),
        (
            lambda: v.choices("attacks", ("pgd", "pgd"), ("fgsm", "pgd")),
            "attacks must be distinct names (each once), not ['pgd', 'pgd']",
        ),
        (lambda: v.device("tpu"), "device must be one of auto, cpu, cuda, cuda:N, mps, not 'tpu'"),
    ],
)
def test_each_check_raises_the_dialects_message(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message


def test_checks_return_what_they_accept():
    assert v.whole("n", 3, 1) == 3
    assert v.number("lr", 1, above=0) == 1.0 and isinstance(v.number("lr", 1, above=0), float)
    assert v.choices("a", ["x"], ("x", "y")) == ("x",)
    assert v.device("cuda:1") == "cuda:1"


def _fields(kind: str) -> dict[str, dataclasses.Field]:
    config_cls, _ = JOB_KINDS[kind].load()
    return {f.name: f for f in dataclasses.fields(config_cls)}


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_job_kind_defaults_to_the_auto_device(kind):
    assert _fields(kind)["device"].default == "auto"


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_job_kind_refuses_a_bool_for_a_number_and_a_number_for_a_bool(kind):
    fields = _fields(kind)
    numbers = [n for n, f in fields.items() if f.type in ("int", "float") and n != "seed"]
    flags = [n for n, f in fields.items() if f.type == "bool"]
    assert numbers, kind
    for name in numbers:
        with pytest.raises(ConfigError, match=rf"^{name} must be .*, not True"):
            build_config(kind, {name: True})
    for name in flags:
        with pytest.raises(ConfigError, match=rf"^{name} must be true or false, not 1"):
            build_config(kind, {name: 1})


def test_a_nested_section_is_built_checked_and_written_back():
    """The poisoning job's sanitiser settings are a [sanitize] table, not sanitize_* fields."""
    from advstudio.core.jobkinds import config_to_dict
    from advstudio.core.poisoning.sanitize import SanitizeConfig

    config = build_config(
        "poison", {"defence": "sanitize", "sanitize": {"methods": "knn", "epochs": 2}}
    )
    assert config.sanitize == SanitizeConfig(methods=("knn",), epochs=2)
    assert config.sanitize_config().arch == config.arch
    values = config_to_dict(config)
    assert values["sanitize"]["methods"] == ["knn"] and values["sanitize"]["epochs"] == 2
    assert build_config("poison", values) == config  # the round trip
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'sanitize.epoch' for section "
        r"'sanitize'; allowed: .*epochs",
    ):
        build_config("poison", {"sanitize": {"epoch": 2}})
    with pytest.raises(ConfigError, match=r"sanitize.epochs must be a whole number, not 2.5"):
        build_config("poison", {"sanitize": {"epochs": 2.5}})
    with pytest.raises(ConfigError, match=r"sanitize must be a section of settings, not 'knn'"):
        build_config("poison", {"sanitize": "knn"})


def test_a_nested_section_round_trips_through_a_toml_file(tmp_path):
    import tomllib

    from advstudio.core.jobkinds import config_to_dict
    from advstudio.core.runs.configfile import write_config

    config = build_config("poison", {"sanitize": {"methods": ["loss", "knn"]}})
    path = write_config(tmp_path / "poison.toml", "poison", config_to_dict(config))
    values = tomllib.loads(path.read_text())
    assert values.pop("kind") == "poison" and "[sanitize]" in path.read_text()
    assert build_config("poison", values) == config
