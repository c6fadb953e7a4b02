"""One attack on one image, as the Attack tab runs it: the job behind its "Attack" button.

A plain config (:class:`AttackSpec`) names the attack, how much the attacker knows
(:class:`Access`) and the budget; :func:`attack_image` runs it and returns everything the tab
shows: the adversarial image, the perturbation, top-5 before and after, and the measures of
:func:`~advstudio.core.attacks.metrics.attack_report`. For white-box FGSM it also returns the
gradient sign, so an epsilon slider can re-apply it with one forward pass per move
(:func:`fgsm_at`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core.attacks.blackbox import as_predict, nes, simba, spsa, transfer
from advstudio.core.attacks.metrics import ImageReport, attack_report
from advstudio.core.attacks.whitebox import (
    apply_direction, bim, check_eps, fgsm, fgsm_direction, mifgsm, pgd)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Progress
from advstudio.core.models.classifier import Classifier, Prediction


class Access(str, enum.Enum):
    """What the attacker may use."""

    WHITEBOX = "white-box"  # the target's gradients
    TRANSFER = "transfer"  # gradients of a surrogate model; the target is only queried
    QUERY = "query"  # the target's output scores only, within a query budget


WHITEBOX = {"fgsm": fgsm, "bim": bim, "pgd": pgd, "mifgsm": mifgsm}
QUERY = {"nes": nes, "spsa": spsa, "simba": simba}
ATTACK_NAMES = {"fgsm": "FGSM", "bim": "BIM / I-FGSM", "pgd": "PGD", "mifgsm": "MI-FGSM",
                "nes": "NES (gradient-sign estimate)", "spsa": "SPSA (gradient-sign estimate)",
                "simba": "SimBA (random pixel search)"}


@dataclass(frozen=True)
class AttackSpec:
    """``eps``: L-inf radius in pixel units [0, 1] (SimBA: its per-pixel step). ``alpha``: step
    of the iterative attacks (0 = eps / 4 for BIM, eps / 10 for PGD and MI-FGSM). ``target``:
    class index for targeted attacks. ``label``: the true class, or -1 to use the model's own
    prediction (what a user without labels has)."""

    attack: str = "fgsm"
    access: Access = Access.WHITEBOX
    eps: float = 0.1
    steps: int = 10
    alpha: float = 0.0
    targeted: bool = False
    target: int = -1
    label: int = -1
    max_queries: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", Access(self.access))
        check_eps(self.eps)
        allowed = QUERY if self.access is Access.QUERY else WHITEBOX
        if self.attack not in allowed:
            raise ConfigError(f"attack {self.attack!r} is not a {self.access.value} attack; "
                              f"allowed: {', '.join(allowed)}")
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, not {self.steps}")
        if self.alpha < 0:
            raise ConfigError(f"step size must be positive, not {self.alpha}")

    def step_size(self) -> float:
        if self.alpha > 0:
            return self.alpha
        return self.eps / 4 if self.attack == "bim" else self.eps / 10


@dataclass
class AttackOutcome:
    """CPU tensors of shape (1, C, H, W); ``direction`` only for white-box FGSM."""

    spec: AttackSpec
    x: torch.Tensor
    x_adv: torch.Tensor
    label: int
    before: Prediction
    after: Prediction
    report: ImageReport
    queries: int | None = None
    surrogate_success: bool | None = None
    direction: torch.Tensor | None = None

    @property
    def perturbation(self) -> torch.Tensor:
        return self.x_adv - self.x


def _whitebox(model: nn.Module, x: torch.Tensor, goal: torch.Tensor, spec: AttackSpec,
              generator: torch.Generator) -> torch.Tensor:
    kw = {"targeted": spec.targeted}
    if spec.attack == "fgsm":
        return fgsm(model, x, goal, spec.eps, **kw)
    kw |= {"alpha": spec.step_size(), "steps": spec.steps}
    if spec.attack == "pgd":
        kw["generator"] = generator
    return WHITEBOX[spec.attack](model, x, goal, spec.eps, **kw)


def attack_image(model: Classifier, x: torch.Tensor, spec: AttackSpec,
                 surrogate: nn.Module | None = None) -> Job[AttackOutcome]:
    """Attack one image ``x`` ((1, C, H, W) or (C, H, W), pixels in [0, 1]) on ``model``'s device.

    Raises :class:`ConfigError` for a target outside the model's classes, a target equal to the
    true class, or a transfer attack without a surrogate.
    """
    device = model.device
    x = (x.unsqueeze(0) if x.dim() == 3 else x).to(device)
    n = model.num_classes
    before = model.predict(x, k=5)[0]
    label = spec.label if spec.label >= 0 else before.indices[0]
    if not 0 <= label < n:
        raise ConfigError(f"true class {label} is outside the model's classes 0..{n - 1}")
    if spec.targeted:
        if not 0 <= spec.target < n:
            raise ConfigError(f"target class {spec.target} is outside the model's classes "
                              f"0..{n - 1}")
        if spec.target == label:
            raise ConfigError(f"the target class {model.class_names[label]!r} is already the "
                              "true class; pick another target")
    goal = torch.tensor([spec.target if spec.targeted else label], device=device)
    generator = torch.Generator(device=device.type).manual_seed(spec.seed)
    yield Progress(0, 1, f"{ATTACK_NAMES[spec.attack]} ({spec.access.value})")
    queries = surrogate_success = direction = None
    if spec.access is Access.WHITEBOX:
        if spec.attack == "fgsm":
            direction = fgsm_direction(model, x, goal, targeted=spec.targeted)
            x_adv = apply_direction(x, direction, spec.eps)
        else:
            x_adv = _whitebox(model, x, goal, spec, generator)
    elif spec.access is Access.TRANSFER:
        if surrogate is None:
            raise ConfigError("a transfer attack needs a surrogate model")
        surrogate = surrogate.to(device)
        kw = {} if spec.attack == "fgsm" else {"alpha": spec.step_size(), "steps": spec.steps}
        if spec.attack == "pgd":
            kw["generator"] = generator
        res = transfer(surrogate, as_predict(model), x, goal, attack=WHITEBOX[spec.attack],
                       targeted=spec.targeted, eps=spec.eps, **kw)
        x_adv, queries = res.x_adv, res.queries
        surrogate_success = bool(res.surrogate_success[0])
    else:
        kw = {"targeted": spec.targeted, "max_queries": spec.max_queries, "generator": generator}
        if spec.targeted:
            kw["y_true"] = torch.tensor([label], device=device)
        if spec.attack == "simba":
            res = simba(as_predict(model), x, goal, step=spec.eps, **kw)
        else:
            res = QUERY[spec.attack](as_predict(model), x, goal, spec.eps, **kw)
        x_adv, queries = res.x_adv, int(res.queries[0])
    yield Progress(1, 1, "measuring")
    report = attack_report(model, x, x_adv, [label], [spec.target] if spec.targeted else None)[0]
    after = model.predict(x_adv, k=5)[0]
    return AttackOutcome(spec, x.cpu(), x_adv.detach().cpu(), label, before, after, report,
                         queries, surrogate_success,
                         None if direction is None else direction.detach().cpu())


def has_input_gradients(model: Classifier) -> bool:
    """Whether white-box attacks can run on ``model``: one backward pass on a blank image.
    False for models that give no gradient to their input (e.g. a scripted model run under
    ``no_grad``); those are offered the black-box attacks only."""
    from advstudio.core.attacks.whitebox import fgsm_direction
    from advstudio.core.errors import AttackError

    x = torch.full((1, *model.input_shape), 0.5, device=model.device)
    try:
        fgsm_direction(model, x, torch.zeros(1, dtype=torch.long, device=model.device))
    except AttackError:
        return False
    return True


def fgsm_at(model: Classifier, outcome: AttackOutcome, eps: float) -> AttackOutcome:
    """Re-apply a white-box FGSM outcome's cached gradient sign at another ``eps``: one clip and
    two cheap forward passes (the report's), no gradient. For the interactive slider."""
    if outcome.direction is None:
        raise ConfigError("only a white-box FGSM result can be re-applied at another epsilon")
    check_eps(eps)
    device = model.device
    x = outcome.x.to(device)
    x_adv = apply_direction(x, outcome.direction.to(device), eps)
    spec = outcome.spec
    report = attack_report(model, x, x_adv, [outcome.label],
                           [spec.target] if spec.targeted else None)[0]
    after = model.predict(x_adv, k=5)[0]
    new_spec = AttackSpec(**{**spec.__dict__, "eps": eps})
    return AttackOutcome(new_spec, outcome.x, x_adv.cpu(), outcome.label, outcome.before, after,
                         report, None, None, outcome.direction)
