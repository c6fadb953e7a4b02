"""Every job kind that can run headless: name -> config class and job function.

Imported lazily (by dotted path) so that listing the kinds costs nothing and a kind whose module
fails to import does not break the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import Any

from advstudio.core.errors import ConfigError
from advstudio.core.validate import fail


@dataclass(frozen=True)
class JobKind:
    name: str
    config: str  # "module:ClassName"
    run: str  # "module:function"
    description: str

    def load(self) -> tuple[type, Any]:
        def resolve(path: str):
            module, attr = path.split(":")
            return getattr(importlib.import_module(module), attr)

        return resolve(self.config), resolve(self.run)


JOB_KINDS: dict[str, JobKind] = {
    k.name: k
    for k in [
        JobKind(
            "evaluate",
            "advstudio.core.evaluate:EvaluateConfig",
            "advstudio.core.evaluate:evaluate",
            "accuracy of a classifier on the bundled test digits",
        ),
        JobKind(
            "sweep",
            "advstudio.core.attacks.sweep:SweepConfig",
            "advstudio.core.attacks.sweep:run_sweep",
            "accuracy and attack success against epsilon",
        ),
        JobKind(
            "robust",
            "advstudio.core.attacks.robust:RobustConfig",
            "advstudio.core.attacks.robust:run_robust",
            "robust accuracy under an AutoAttack-style ensemble (APGD-CE, APGD-T, SPSA)",
        ),
        JobKind(
            "gan",
            "advstudio.core.gan.config:GanConfig",
            "advstudio.core.gan.train:train_gan",
            "train a GAN or DCGAN",
        ),
        JobKind(
            "train",
            "advstudio.core.defence.config:TrainConfig",
            "advstudio.core.defence.train:train_classifier",
            "train a digit classifier: standard or adversarial (fgsm, fgsm-rs, pgd)",
        ),
        JobKind(
            "vat",
            "advstudio.core.defence.config:VatConfig",
            "advstudio.core.defence.vat:train_vat",
            "semi-supervised Virtual Adversarial Training (or its supervised-only baseline)",
        ),
        JobKind(
            "detector",
            "advstudio.core.defence.config:DetectorConfig",
            "advstudio.core.defence.detector:train_detector",
            "train a detector of adversarial inputs for a classifier",
        ),
        JobKind(
            "poison",
            "advstudio.core.poisoning.job:PoisonConfig",
            "advstudio.core.poisoning.job:run_poisoning",
            "poison the training digits, train the victim, measure the damage",
        ),
        JobKind(
            "certify-smoothing",
            "advstudio.core.certify.job:SmoothingConfig",
            "advstudio.core.certify.job:run_smoothing",
            "certified L2 radii by randomised smoothing (Cohen et al.), beside DeepFool and C&W "
            "on the base classifier",
        ),
        JobKind(
            "certify-ibp",
            "advstudio.core.certify.job:IbpConfig",
            "advstudio.core.certify.job:run_ibp",
            "verified L-inf accuracy by interval bound propagation (Gowal et al.), beside PGD "
            "and clean accuracy",
        ),
    ]
}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """TOML/JSON value -> the dataclass field's type (lists -> tuples, ints -> floats), in the
    dialect of :mod:`advstudio.core.validate`: a bool is not a number, a string is not a list."""
    origin = typing.get_origin(hint)
    if origin is tuple or hint is tuple:
        if isinstance(value, str):
            fail(name, "a list", value, f"write [{value!r}] for one")
        if not isinstance(value, (list, tuple)):  # a table would pass as its keys
            fail(name, "a list", value)
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        fail(name, "a number", value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        what = {int: "a whole number", float: "a number", str: "a text", bool: "true or false"}[
            hint
        ]
        fail(name, what, value)
    return value


def build_config(kind: str, values: dict[str, Any]) -> Any:
    """A job config from plain values; unknown keys and bad types get a message naming them.
    A field that is itself a config (e.g. the poisoning job's ``sanitize``) takes a nested
    section (a TOML table), checked the same way, its keys named ``section.key``. Anything
    the config class raises while checking is a :class:`ConfigError` here."""
    if not isinstance(kind, str) or kind not in JOB_KINDS:
        raise ConfigError(f"unknown job kind {kind!r}; allowed: {', '.join(JOB_KINDS)}")
    config_cls, _ = JOB_KINDS[kind].load()
    try:
        return _build(config_cls, values, "", kind)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        if isinstance(exc, ConfigError):
            raise
        # a value of a type the checks did not expect (a table where a list was meant...)
        raise ConfigError(f"bad {kind} config: {exc}") from exc


def _build(config_cls: type, values: Any, prefix: str, kind: str) -> Any:
    if not isinstance(values, dict):
        fail(prefix.rstrip(".") or "the config", "a section of settings", values)
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        where = f"section {prefix.rstrip('.')!r}" if prefix else f"job kind {kind!r}"
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(prefix + k) for k in unknown)} for {where}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    missing = [
        f.name
        for f in dataclasses.fields(config_cls)
        if f.init
        and f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing and prefix:
        raise ConfigError(
            f"section {prefix.rstrip('.')!r} lacks {', '.join(repr(prefix + k) for k in missing)}"
        )
    coerced = {}
    for key, value in values.items():
        hint = _section(hints[key])
        if dataclasses.is_dataclass(hint):
            coerced[key] = _build(hint, value, f"{prefix}{key}.", kind)
        else:
            coerced[key] = _coerce(prefix + key, value, hints[key])
    return config_cls(**coerced)


def _section(hint: Any) -> Any:
    """The dataclass of a field typed ``Section`` or ``Section | None`` (a TOML table, e.g. a
    model's ``[card]``); other hints as they are."""
    args = typing.get_args(hint)
    if len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        if dataclasses.is_dataclass(inner):
            return inner
    return hint


def config_to_dict(config: Any) -> dict[str, Any]:
    """The inverse of :func:`build_config`: nested configs become sections (dicts), tuples
    become lists, for TOML/JSON; ``None`` values are left out (TOML has no null, and every
    field that may be ``None`` defaults to it)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v is not None}
        return list(value) if isinstance(value, tuple) else value

    return plain(dataclasses.asdict(config))
