"""The attack catalogue: one entry per attack, read by everything that offers attacks.

The single-image lab (:mod:`~advstudio.core.attacks.lab`), the epsilon sweep
(:mod:`~advstudio.core.attacks.sweep`), robust accuracy (:mod:`~advstudio.core.attacks.robust`),
the Attack tab, ``advstudio-run --list`` and ``docs/ATTACKS.md`` all list and run attacks from
here, so adding an attack is one function with the uniform signature and one :func:`register`.

Every entry's ``run`` has the same signature::

    run(model, x, y, params, *, target=None, generator=None, seed=0) -> AttackRun

``x``: a validated (N, C, H, W) batch in [0, 1] on the model's device; ``y``: the true classes
(N,) int64; ``target``: the target classes (N,) for a targeted attack, None otherwise;
``params``: every parameter of the entry, already checked (:meth:`AttackEntry.resolve`);
``generator`` / ``seed``: the randomness of attacks that draw (a random start, probes, a pixel
order). The caller validates once, at its edge; ``run`` trusts what it is given.

Units: pixels, ``eps`` and step sizes are on the [0, 1] scale (``eps = 8/255`` is eight grey
levels).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from advstudio.core import validate
from advstudio.core.attacks.autopgd import apgd
from advstudio.core.attacks.blackbox import as_predict, nes, simba, spsa
from advstudio.core.attacks.fab import fab_t
from advstudio.core.attacks.hopskipjump import as_label_predict, hop_skip_jump
from advstudio.core.attacks.l2 import pgd_l2
from advstudio.core.attacks.minimal import cw_l2, deepfool
from advstudio.core.attacks.square import square_l2, square_linf
from advstudio.core.attacks.whitebox import bim, fgsm, mifgsm, pgd
from advstudio.core.errors import ConfigError

CONTEXTS = ("lab", "sweep", "robust")
"""Where an attack can be offered: the single-image lab, the epsilon sweep, robust accuracy."""


class Access(str, enum.Enum):
    """What the attacker may use."""

    WHITEBOX = "white-box"  # the target's gradients
    TRANSFER = "transfer"  # gradients of a surrogate model; the target is only queried
    QUERY = "query"  # the target's output scores only, within a query budget
    LABELS = "labels"  # the target's predicted class only (decision-based), within a budget


ACCESS_TEXT = {
    Access.WHITEBOX: "white-box (the model's gradients)",
    Access.TRANSFER: "transfer (a surrogate's gradients)",
    Access.QUERY: "scores (output probabilities only)",
    Access.LABELS: "labels (the predicted class only)",
}


@dataclass(frozen=True)
class Param:
    """One setting of an attack: its ``default``, the inclusive range ``[low, high]`` it must lie
    in (None: unbounded on that side), its ``unit`` and a ``help`` text for tooltips and docs. An
    int default makes it a whole-number setting, a str default a choice among ``choices``."""

    name: str
    default: float | int | str
    low: float | None = None
    high: float | None = None
    unit: str = ""
    help: str = ""
    choices: tuple[str, ...] = ()
    open_low: bool = False  # the value must be > low, not >= low

    def check(self, value: Any) -> float | int | str:
        """``value`` if it fits this setting, else a :class:`ConfigError` naming it."""
        if isinstance(self.default, str):
            return validate.choice(self.name, value, self.choices)
        if isinstance(self.default, int):
            return validate.whole(self.name, value, self.low, self.high)
        if self.open_low:
            return validate.number(self.name, value, above=self.low, high=self.high)
        return validate.number(self.name, value, self.low, self.high)

    @property
    def range_text(self) -> str:
        """The allowed values in words: ``ce, dlr``, ``[0, 1]``, ``>= 1``."""
        if self.choices:
            return ", ".join(self.choices)
        left = "(" if self.open_low else "["
        if self.low is not None and self.high is not None:
            return f"{left}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"> {self.low:g}" if self.open_low else f">= {self.low:g}"
        return f"<= {self.high:g}" if self.high is not None else "any"


@dataclass(frozen=True)
class AttackRun:
    """What an attack returns: the adversarial batch (same shape as ``x``, in [0, 1]) and, for
    query attacks, how many queries each image cost (the clean one included)."""

    x_adv: torch.Tensor
    queries: torch.Tensor | None = None


class AttackFn(Protocol):
    """The uniform signature of every entry's ``run`` (see the module docstring)."""

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        params: Mapping[str, Any],
        *,
        target: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> AttackRun: ...


@dataclass(frozen=True)
class Use:
    """How one context runs an entry: parameter values of its own (the sweep's PGD takes 20
    steps) and the label it shows (empty: the entry's ``short``)."""

    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class AttackEntry:
    """One attack. ``title``: its name in attack lists; ``short``: in measures, legends and
    tables. ``access``: the ways it can run (white-box on the model, on a surrogate for
    transfer, or on scores only). ``norm``: the norm its perturbation is measured in.
    ``budgeted``: ``eps`` bounds the perturbation (False: a minimal-perturbation attack that
    finds its own size). ``step_divisor``: an iterative attack's step size when ``alpha`` is 0,
    ``eps / step_divisor``. ``cost``: per image, (forward passes, backward passes) in words.
    ``uses``: the contexts that offer it and how. ``untargeted``: the sentence shown when a
    targeted run is asked of an attack that cannot aim at a class (empty: it can)."""

    name: str
    title: str
    short: str
    access: tuple[Access, ...]
    norm: str
    params: tuple[Param, ...]
    run: AttackFn
    cost: tuple[str, str]
    uses: Mapping[str, Use]
    budgeted: bool = True
    step_divisor: int | None = None
    untargeted: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.uses) - set(CONTEXTS)
        if unknown:
            raise ConfigError(
                f"attack {self.name!r}: unknown context {sorted(unknown)[0]!r}; "
                f"allowed: {', '.join(CONTEXTS)}"
            )
        if len({p.name for p in self.params}) != len(self.params):
            raise ConfigError(f"attack {self.name!r}: each parameter once, please")

    @property
    def iterative(self) -> bool:
        """True when it takes a number of steps (a ``steps`` parameter)."""
        return self.has("steps")

    @property
    def targeted(self) -> bool:
        """True when it can aim at a target class."""
        return not self.untargeted

    def has(self, name: str) -> bool:
        """Whether it takes the parameter ``name`` (the Attack tab enables that field)."""
        return any(p.name == name for p in self.params)

    def param(self, name: str) -> Param:
        """The parameter ``name``; KeyError if it has none of that name."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def label(self, context: str) -> str:
        """The name ``context`` shows it by ("PGD-20" in the sweep)."""
        use = self.uses.get(context)
        return (use.label if use is not None else "") or self.short

    def resolve(
        self, values: Mapping[str, Any] | None = None, context: str | None = None
    ) -> dict[str, Any]:
        """Every parameter of this entry: its default, then the ``context``'s own value, then
        ``values`` (keys the entry does not have are ignored), each checked once."""
        use = self.uses.get(context) if context else None
        merged = {p.name: p.default for p in self.params}
        for source in (use.params if use else {}, values or {}):
            merged.update((k, v) for k, v in source.items() if k in merged)
        return {p.name: p.check(merged[p.name]) for p in self.params}

    def step_size(self, params: Mapping[str, Any]) -> float:
        """``alpha``, or when it is 0 the automatic ``eps / step_divisor`` (10 if unset)."""
        alpha = params.get("alpha", 0.0)
        return alpha if alpha > 0 else params["eps"] / (self.step_divisor or 10)


_REGISTRY: dict[str, AttackEntry] = {}


def register(entry: AttackEntry) -> AttackEntry:
    """Add ``entry`` to the catalogue (after the others); its name must be new."""
    if entry.name in _REGISTRY:
        raise ConfigError(f"attack {entry.name!r} is already in the catalogue")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove the entry ``name`` if there is one."""
    _REGISTRY.pop(name, None)


@contextmanager
def registered(entry: AttackEntry) -> Iterator[AttackEntry]:
    """``entry`` in the catalogue for the duration of the block (a plug-in, or a test's toy)."""
    register(entry)
    try:
        yield entry
    finally:
        unregister(entry.name)


def get(name: str) -> AttackEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown attack {name!r}; allowed: {', '.join(_REGISTRY)}") from None


def attacks_for(
    *,
    access: Access | str | None = None,
    context: str | None = None,
    norm: str | None = None,
    budgeted: bool | None = None,
) -> list[AttackEntry]:
    """The entries that fit every filter given, in catalogue order."""
    want = Access(access) if access is not None else None
    return [
        e
        for e in _REGISTRY.values()
        if (want is None or want in e.access)
        and (context is None or context in e.uses)
        and (norm is None or e.norm == norm)
        and (budgeted is None or e.budgeted == budgeted)
    ]


def names(**filters: Any) -> tuple[str, ...]:
    """The names of :func:`attacks_for` ``(**filters)``."""
    return tuple(e.name for e in attacks_for(**filters))


# --------------------------------------------------------------------------- listing and docs


def _offered(entry: AttackEntry) -> str:
    """The contexts that offer ``entry``, or that only the API does."""
    return ", ".join(entry.uses) or "API only"


def format_list() -> str:
    """One line per attack for ``advstudio-run --list``: name, access, norm, where offered."""
    lines = ["attacks: name, title [norm; access; offered in] (docs/ATTACKS.md has more)"]
    for e in _REGISTRY.values():
        access = ", ".join(a.value for a in e.access)
        lines.append(f"{e.name:10} {e.title} [{e.norm}; {access}; {_offered(e)}]")
    return "\n".join(lines)


def markdown_table() -> str:
    """``docs/ATTACKS.md``: every attack with its access, cost and parameters."""
    out = [
        "# Attacks",
        "",
        "Generated from `advstudio/core/attacks/catalogue.py`; do not edit.",
        "Pixels, eps and step sizes are on the [0, 1] scale. To add an attack, write one "
        "function with the catalogue's `run` signature and `register` one `AttackEntry`; "
        "the lab, the sweep, robust accuracy, the Attack tab and `advstudio-run --list` "
        'offer it where its entry says. Refresh this file with `python -c "from '
        'advstudio.core.attacks.catalogue import write_docs; write_docs()"`.',
        "",
        "| name | attack | access | norm | eps | iterative | targeted | cost per image "
        "(forward / backward) | offered in |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in _REGISTRY.values():
        access = ", ".join(ACCESS_TEXT[a] for a in e.access)
        eps = "budget" if e.budgeted else "unused (minimal)"
        out.append(
            f"| `{e.name}` | {e.title} | {access} | {e.norm} | {eps} | "
            f"{'yes' if e.iterative else 'no'} | {'yes' if e.targeted else 'no'} | "
            f"{e.cost[0]} / {e.cost[1]} | {_offered(e)} |"
        )
    out += ["", "## Parameters", ""]
    for e in _REGISTRY.values():
        ref = f" ({e.reference})" if e.reference else ""
        out += [
            f"### `{e.name}`: {e.title}{ref}",
            "",
            "| parameter | default | range | unit | meaning |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| `{p.name}` | {p.default!r} | {p.range_text} | {p.unit} | {p.help} |"
            for p in e.params
        ]
        for context, use in e.uses.items():
            if use.params:
                settings = ", ".join(f"{k} = {v!r}" for k, v in use.params.items())
                out.append(f"\nIn the {context}: {settings}.")
        out.append("")
    return "\n".join(out)


def write_docs(path: str | Path = Path(__file__).parents[3] / "docs" / "ATTACKS.md") -> Path:
    """Write :func:`markdown_table` to ``path`` (the repository's ``docs/ATTACKS.md``)."""
    path = Path(path)
    path.write_text(markdown_table(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the built-in attacks


def _goal(y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    return y if target is None else target


def _run_fgsm(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(fgsm(model, x, _goal(y, target), params["eps"], targeted=target is not None))


def _run_bim(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(
        bim(
            model,
            x,
            _goal(y, target),
            params["eps"],
            alpha=BIM.step_size(params),
            steps=params["steps"],
            targeted=target is not None,
        )
    )


def _run_pgd(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(
        pgd(
            model,
            x,
            _goal(y, target),
            params["eps"],
            alpha=PGD.step_size(params),
            steps=params["steps"],
            targeted=target is not None,
            generator=generator,
        )
    )


def _run_mifgsm(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(
        mifgsm(
            model,
            x,
            _goal(y, target),
            params["eps"],
            alpha=MIFGSM.step_size(params),
            steps=params["steps"],
            decay=params["decay"],
            targeted=target is not None,
        )
    )


def _apgd_runner(norm: str) -> AttackFn:
    def run(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
        return AttackRun(
            apgd(
                model,
                x,
                y,
                eps=params["eps"],
                steps=params["steps"],
                loss=params["loss"],
                targeted=target is not None,
                target=target,
                seed=seed,
                norm=norm,
            )
        )

    return run


def _run_deepfool(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(deepfool(model, x, y=y, steps=params["steps"]))


def _run_cw(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(
        cw_l2(
            model,
            x,
            _goal(y, target),
            targeted=target is not None,
            c=params["c"],
            kappa=params["kappa"],
            steps=params["steps"],
            search_steps=params["search_steps"],
        )
    )


def _scores_runner(attack: Callable[..., Any], *extra: str) -> AttackFn:
    """The adapter of a score-only attack taking ``eps`` and a query budget; ``extra``: the
    entry's further parameters, passed by name (Square's ``p_init``)."""

    def run(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
        res = attack(
            as_predict(model),
            x,
            _goal(y, target),
            params["eps"],
            max_queries=params["max_queries"],
            targeted=target is not None,
            generator=generator,
            **{name: params[name] for name in extra},
        )
        return AttackRun(res.x_adv, res.queries)

    return run


def _run_simba(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    res = simba(
        as_predict(model),
        x,
        _goal(y, target),
        step=params["eps"],
        max_queries=params["max_queries"],
        targeted=target is not None,
        generator=generator,
    )
    return AttackRun(res.x_adv, res.queries)


PIXELS = "pixels [0, 1]"
EPS = Param("eps", 0.1, 0.0, 1.0, PIXELS, "L∞ radius of the perturbation")
ALPHA = Param("alpha", 0.0, 0.0, None, PIXELS, "step size; 0 = automatic (eps / divisor)")
QUERIES = Param(
    "max_queries", 2000, 1, None, "queries", "query budget per image, the clean query included"
)
WHITE_OR_TRANSFER = (Access.WHITEBOX, Access.TRANSFER)
PLAIN = Use()  # the entry's own defaults and short label


def _steps(default: int, help: str = "Iterations of the attack") -> Param:
    return Param("steps", default, 1, None, "steps", help)


FGSM = register(
    AttackEntry(
        "fgsm",
        "FGSM",
        "FGSM",
        WHITE_OR_TRANSFER,
        "Linf",
        (EPS,),
        _run_fgsm,
        ("1", "1"),
        {"lab": PLAIN, "sweep": PLAIN, "robust": PLAIN},
        reference="Goodfellow et al. 2015",
    )
)
BIM = register(
    AttackEntry(
        "bim",
        "BIM / I-FGSM",
        "BIM",
        WHITE_OR_TRANSFER,
        "Linf",
        (EPS, _steps(10), ALPHA),
        _run_bim,
        ("steps", "steps"),
        {"lab": PLAIN, "sweep": PLAIN},
        step_divisor=4,
        reference="Kurakin et al. 2017",
    )
)
PGD = register(
    AttackEntry(
        "pgd",
        "PGD",
        "PGD",
        WHITE_OR_TRANSFER,
        "Linf",
        (EPS, _steps(10), ALPHA),
        _run_pgd,
        ("steps", "steps"),
        {"lab": PLAIN, "sweep": Use({"steps": 20}, "PGD-20"), "robust": PLAIN},
        step_divisor=10,
        reference="Madry et al. 2018",
    )
)
MIFGSM = register(
    AttackEntry(
        "mifgsm",
        "MI-FGSM",
        "MI-FGSM",
        WHITE_OR_TRANSFER,
        "Linf",
        (EPS, _steps(10), ALPHA, Param("decay", 1.0, 0.0, None, "", "momentum decay")),
        _run_mifgsm,
        ("steps", "steps"),
        {"lab": PLAIN, "sweep": PLAIN},
        step_divisor=10,
        reference="Dong et al. 2018",
    )
)
register(
    AttackEntry(
        "apgd",
        "APGD (Auto-PGD)",
        "APGD",
        (Access.WHITEBOX,),
        "Linf",
        (
            EPS,
            _steps(100, "APGD: iterations (the step size adapts itself)"),
            Param(
                "loss",
                "ce",
                unit="",
                help="objective: cross-entropy or Difference of Logits Ratio",
                choices=("ce", "dlr"),
            ),
        ),
        _apgd_runner("Linf"),
        ("<= steps + 2", "<= steps + 1"),
        {"lab": PLAIN},
        reference="Croce & Hein 2020",
    )
)
register(
    AttackEntry(
        "deepfool",
        "DeepFool (minimal L2)",
        "DeepFool",
        (Access.WHITEBOX,),
        "L2",
        (_steps(50, "DeepFool: the most linearisation steps (it stops at the first flip)"),),
        _run_deepfool,
        ("<= steps + 1", "<= steps × classes"),
        {"lab": PLAIN},
        budgeted=False,
        untargeted="DeepFool is untargeted: it steps to the nearest decision boundary, whatever "
        "class lies behind it. Untick Targeted, or use C&W for a targeted minimal "
        "perturbation",
        reference="Moosavi-Dezfooli et al. 2016",
    )
)
register(
    AttackEntry(
        "cw",
        "C&W L2 (minimal L2)",
        "C&W",
        (Access.WHITEBOX,),
        "L2",
        (
            _steps(100, "C&W: Adam steps per round of its binary search on c (5 rounds)"),
            Param(
                "c", 1.0, 0.0, None, "", "first weight of the classification loss", open_low=True
            ),
            Param("kappa", 0.0, 0.0, None, "logits", "confidence margin"),
            Param("search_steps", 5, 1, None, "rounds", "rounds of the binary search on c"),
        ),
        _run_cw,
        ("steps × search_steps + 1", "steps × search_steps"),
        {"lab": PLAIN},
        budgeted=False,
        reference="Carlini & Wagner 2017",
    )
)
register(
    AttackEntry(
        "nes",
        "NES (gradient-sign estimate)",
        "NES",
        (Access.QUERY,),
        "Linf",
        (EPS, QUERIES),
        _scores_runner(nes),
        ("<= max_queries", "0"),
        {"lab": PLAIN},
        reference="Ilyas et al. 2018",
    )
)
register(
    AttackEntry(
        "spsa",
        "SPSA (gradient-sign estimate)",
        "SPSA",
        (Access.QUERY,),
        "Linf",
        (EPS, QUERIES),
        _scores_runner(spsa),
        ("<= max_queries", "0"),
        {"lab": PLAIN, "robust": Use(label="SPSA (query-based)")},
        reference="Uesato et al. 2018",
    )
)
register(
    AttackEntry(
        "simba",
        "SimBA (random pixel search)",
        "SimBA",
        (Access.QUERY,),
        "Linf",
        (
            Param("eps", 0.1, 0.0, 1.0, PIXELS, "per-pixel step (the L∞ size of the perturbation)"),
            QUERIES,
        ),
        _run_simba,
        ("<= max_queries", "0"),
        {"lab": PLAIN, "robust": Use(label="SimBA (query-based)")},
        reference="Guo et al. 2019",
    )
)


# --------------------------------------------------------------------------- Square, FAB-T, L2, HSJ


def _run_pgd_l2(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    return AttackRun(
        pgd_l2(
            model,
            x,
            _goal(y, target),
            params["eps"],
            alpha=PGD_L2.step_size(params),
            steps=params["steps"],
            targeted=target is not None,
            generator=generator,
        )
    )


def _fab_runner(norm: str) -> AttackFn:
    def run(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
        return AttackRun(
            fab_t(
                model,
                x,
                y,
                norm=norm,
                steps=params["steps"],
                target=target,
                target_classes=params["target_classes"],
            )
        )

    return run


def _run_hsj(model: nn.Module, x, y, params, *, target=None, generator=None, seed=0):
    starts = None
    if target is not None:  # start from an image of the batch whose true class is the target
        match = y[None, :] == target[:, None]
        starts = torch.where(match.any(1).view(-1, 1, 1, 1), x[match.int().argmax(1)], x)
    res = hop_skip_jump(
        as_label_predict(model),
        x,
        _goal(y, target),
        targeted=target is not None,
        max_queries=params["max_queries"],
        starts=starts,
        generator=generator,
    )
    return AttackRun(res.x_adv, res.queries)


EPS_L2 = Param(
    "eps",
    2.0,
    0.0,
    None,
    "L2, pixels [0, 1]",
    "L2 radius of the perturbation over all pixel values (2.0 on 28 x 28 digits: "
    "about 0.07 per pixel)",
)
P_INIT = Param(
    "p_init",
    0.3,
    0.0,
    1.0,
    "share of the image",
    "the first square's area, halved on the paper's schedule (the paper: 0.05 on "
    "colour images, 0.8 on MNIST; on the digits 0.3 broke 92 % at eps 0.2 in 1,000 "
    "queries, 0.05 84 %)",
    open_low=True,
)
TARGET_CLASSES = Param(
    "target_classes",
    9,
    1,
    None,
    "classes",
    "with no target class: aim at this many most likely wrong classes in "
    "turn (AutoAttack's FAB-T: 9)",
)
SQUARE_QUERIES = Param(
    "max_queries", 1000, 1, None, "queries", "query budget per image, the clean query included"
)

register(
    AttackEntry(
        "square",
        "Square (random square search)",
        "Square",
        (Access.QUERY,),
        "Linf",
        (EPS, SQUARE_QUERIES, P_INIT),
        _scores_runner(square_linf, "p_init"),
        ("<= max_queries", "0"),
        {"lab": PLAIN, "robust": Use(label="Square (query-based)")},
        reference="Andriushchenko et al. 2020",
    )
)
register(
    AttackEntry(
        "square-l2",
        "Square L2 (random square search)",
        "Square L2",
        (Access.QUERY,),
        "L2",
        (
            EPS_L2,
            SQUARE_QUERIES,
            Param(
                "p_init",
                0.1,
                0.0,
                1.0,
                "share of the image",
                "the first square's area, halved on "
                "the paper's schedule (0.1: the paper's L2 setting)",
                open_low=True,
            ),
        ),
        _scores_runner(square_l2, "p_init"),
        ("<= max_queries", "0"),
        {},
        reference="Andriushchenko et al. 2020",
    )
)
PGD_L2 = register(
    AttackEntry(
        "pgd-l2",
        "PGD L2",
        "PGD L2",
        WHITE_OR_TRANSFER,
        "L2",
        (
            EPS_L2,
            _steps(10),
            Param(
                "alpha", 0.0, 0.0, None, "L2, pixels [0, 1]", "step length; 0 = automatic (eps / 4)"
            ),
        ),
        _run_pgd_l2,
        ("steps", "steps"),
        {},
        step_divisor=4,
        reference="Madry et al. 2018",
    )
)
register(
    AttackEntry(
        "apgd-l2",
        "APGD L2 (Auto-PGD)",
        "APGD L2",
        (Access.WHITEBOX,),
        "L2",
        (
            EPS_L2,
            _steps(100, "APGD: iterations (the step size adapts itself)"),
            Param(
                "loss",
                "ce",
                unit="",
                help="objective: cross-entropy or Difference of Logits Ratio",
                choices=("ce", "dlr"),
            ),
        ),
        _apgd_runner("L2"),
        ("<= steps + 2", "<= steps + 1"),
        {},
        reference="Croce & Hein 2020",
    )
)
register(
    AttackEntry(
        "fab-t",
        "FAB-T (minimal L∞)",
        "FAB-T",
        (Access.WHITEBOX,),
        "Linf",
        (_steps(100, "FAB: steps per target class"), TARGET_CLASSES),
        _fab_runner("Linf"),
        ("2 × steps × target_classes", "steps × target_classes"),
        {"lab": PLAIN, "robust": Use(label="FAB-T")},
        budgeted=False,
        reference="Croce & Hein 2020",
    )
)
register(
    AttackEntry(
        "fab-t-l2",
        "FAB-T L2 (minimal L2)",
        "FAB-T L2",
        (Access.WHITEBOX,),
        "L2",
        (_steps(100, "FAB: steps per target class"), TARGET_CLASSES),
        _fab_runner("L2"),
        ("2 × steps × target_classes", "steps × target_classes"),
        {"lab": PLAIN},
        budgeted=False,
        reference="Croce & Hein 2020",
    )
)
register(
    AttackEntry(
        "hsj",
        "HopSkipJump (labels only, L2)",
        "HopSkipJump",
        (Access.LABELS,),
        "L2",
        (SQUARE_QUERIES,),
        _run_hsj,
        ("<= max_queries", "0"),
        {"lab": PLAIN},
        budgeted=False,
        reference="Chen, Jordan & Wainwright 2020",
    )
)
