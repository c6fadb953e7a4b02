"""One attack on one image, as the Attack tab runs it: the jobs behind its buttons.

A plain config (:class:`AttackSpec`) names the attack, how much the attacker knows
(:class:`Access`) and the budget; :func:`attack_image` runs it and returns everything the tab
shows: the adversarial image, the perturbation, top-5 before and after, the measures of
:func:`~advstudio.core.attacks.metrics.attack_report`, and whether the result survives being
saved (:func:`~advstudio.core.attacks.quantise.survival`: as an 8-bit PNG and, on request, as a
JPEG). For white-box FGSM it also returns the gradient sign, so an epsilon slider can re-apply
it with one forward pass per move (:func:`fgsm_at`).

White-box attacks are the L-inf family (FGSM, BIM, PGD, MI-FGSM, APGD: ``eps`` is their
budget) and the minimal-L2 attacks (DeepFool, C&W: no budget, ``eps`` is unused; the report's
L2 / L-inf is what they needed). ``quantise=True`` moves the result onto the 1/255 grid inside
the eps-ball and repairs it where rounding broke it
(:func:`~advstudio.core.attacks.quantise.quantise_adversarial`), so that what is exported is
what was measured.

The bottom panels of the tab run three more jobs on the current image: :func:`compare_defence`
(an input-transform defence attacked by plain PGD and by BPDA), :func:`detector_check` (the
feature-squeezing detector fitted on clean images of a data set) and :func:`distance_to_boundary`
(DeepFool, C&W and FGSM's smallest flipping eps side by side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import torch
from torch import nn

from advstudio.core.attacks import catalogue
from advstudio.core.attacks.autopgd import APGD_LOSSES
from advstudio.core.attacks.blackbox import as_predict, transfer
from advstudio.core.attacks.catalogue import Access
from advstudio.core.attacks.eot import DEFAULT_SAMPLES, eot_pgd, seeded
from advstudio.core.attacks.metrics import (
    ImageReport,
    attack_report,
    l0,
    l2,
    linf,
    psnr,
    ssim,
)
from advstudio.core.attacks.minimal import check_positive, minimal_norms
from advstudio.core.attacks.quantise import SurvivalReport, quantise_adversarial, survival
from advstudio.core.attacks.transforms import (
    RANDOM_TRANSFORMS,
    TRANSFORMS,
    FeatureSqueezingDetector,
    check_rate,
    defended,
    squeezers_for,
)
from advstudio.core.attacks.whitebox import (
    apply_direction,
    check_eps,
    eval_mode,
    fgsm_direction,
    pgd,
)
from advstudio.core.errors import AttackError, ConfigError
from advstudio.core.jobs import Job, Progress
from advstudio.core.models.classifier import Classifier, Prediction, require_finite_scores

QUANTISE_STEPS = 10
"""Gradient steps of one grey level :func:`quantise_adversarial` may take to repair a rounded
image (white-box only: a black-box attacker has no gradients)."""


@dataclass(frozen=True)
class AttackSpec:
    """``eps``: L-inf radius in pixel units [0, 1] (SimBA: its per-pixel step; unused by the
    minimal-L2 attacks DeepFool and C&W). ``steps``: iterations (C&W: Adam steps per round of
    its search on ``c``; DeepFool: the most it takes). ``alpha``: step of BIM / PGD / MI-FGSM
    (0 = eps / 4 for BIM, eps / 10 for PGD and MI-FGSM). ``target``: class index for targeted
    attacks. ``label``: the true class, or -1 to use the model's own prediction (what a user
    without labels has). ``loss``: APGD's ``"ce"`` or ``"dlr"``. ``c`` (> 0), ``kappa`` (>= 0,
    logit margin) and ``search_steps``: C&W's. ``quantise``: round the result onto the 1/255
    grid and repair it (see the module docstring). ``jpeg_quality``: 1 to 100 to also check
    that the result survives a JPEG of that quality; 0 for the PNG check only."""

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
    loss: str = "ce"
    c: float = 1.0
    kappa: float = 0.0
    search_steps: int = 5
    quantise: bool = False
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", Access(self.access))
        check_eps(self.eps)
        allowed = catalogue.names(access=self.access, context="lab")
        if self.attack not in allowed:
            raise ConfigError(
                f"attack {self.attack!r} is not a {self.access.value} attack; "
                f"allowed: {', '.join(allowed)}"
            )
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, not {self.steps}")
        if self.alpha < 0:
            raise ConfigError(f"step size must be positive, not {self.alpha}")
        if self.loss not in APGD_LOSSES:
            raise ConfigError(
                f"APGD loss must be one of {', '.join(APGD_LOSSES)}, not {self.loss!r}"
            )
        check_positive(self.c, "C&W c (the weight of the classification loss)")
        check_positive(self.kappa, "C&W kappa (confidence margin)", allow_zero=True)
        if self.search_steps < 1:
            raise ConfigError(f"C&W search steps must be at least 1, not {self.search_steps}")
        if (
            isinstance(self.jpeg_quality, bool)
            or not isinstance(self.jpeg_quality, int)
            or not 0 <= self.jpeg_quality <= 100
        ):
            raise ConfigError(
                f"JPEG quality must be a whole number from 1 to 100 (0: no JPEG "
                f"check), not {self.jpeg_quality!r}"
            )
        if self.targeted and self.entry.untargeted:
            raise ConfigError(self.entry.untargeted)
        _ = self.params  # the entry's own checks, once, here at the edge (cached for the run)

    @property
    def entry(self) -> catalogue.AttackEntry:
        """The attack's catalogue entry."""
        return catalogue.get(self.attack)

    @cached_property
    def params(self) -> dict[str, Any]:
        """The settings of this spec that the attack takes, checked against its entry."""
        values = {
            "eps": self.eps,
            "steps": self.steps,
            "alpha": self.alpha,
            "loss": self.loss,
            "c": self.c,
            "kappa": self.kappa,
            "search_steps": self.search_steps,
            "max_queries": self.max_queries,
        }
        return self.entry.resolve(values, "lab")

    @property
    def minimal(self) -> bool:
        """True for the attacks without an eps budget (DeepFool, C&W)."""
        return not self.entry.budgeted

    def step_size(self) -> float:
        """``alpha``, or when it is 0 the attack's automatic step (eps / 4 BIM, eps / 10)."""
        return self.entry.step_size({"eps": self.eps, "alpha": self.alpha})


@dataclass
class AttackOutcome:
    """CPU tensors of shape (1, C, H, W); ``direction`` only for white-box FGSM. ``survival``:
    is ``x_adv`` still adversarial as an 8-bit PNG (and as a JPEG of ``spec.jpeg_quality``).
    ``quantise_method``: how ``spec.quantise`` put the result on the grid (see
    :class:`~advstudio.core.attacks.quantise.QuantisedResult`), None without it."""

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
    survival: SurvivalReport | None = None
    quantise_method: str | None = None

    @property
    def perturbation(self) -> torch.Tensor:
        return self.x_adv - self.x


def quantise_budget(spec: AttackSpec, x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """The L-inf ball :func:`quantise_adversarial` keeps the rounded image in: ``spec.eps``, or
    for the minimal-L2 attacks (no budget) the L-inf they used, rounded up to a grey level."""
    if not spec.minimal:
        return spec.eps
    used = float((x_adv - x).abs().max())
    return min(1.0, math.ceil(used * 255 - 1e-3) / 255)


def measure(
    model: Classifier,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    spec: AttackSpec,
    label: int,
    before: Prediction | None = None,
    **extra,
) -> AttackOutcome:
    """The outcome of an attack that turned ``x`` into ``x_adv`` ((1, C, H, W) on the model's
    device): report, top-5 after, survival as PNG (and JPEG if ``spec.jpeg_quality``). Forward
    passes only. ``extra``: the other :class:`AttackOutcome` fields (queries, direction...)."""
    if before is None:
        before = model.predict(x, k=5)[0]
    target = [spec.target] if spec.targeted else None
    report = attack_report(model, x, x_adv, [label], target)[0]
    after = model.predict(x_adv, k=5)[0]
    saved = survival(
        model,
        x_adv,
        [label],
        targeted=spec.targeted,
        target=target,
        jpeg_quality=spec.jpeg_quality or None,
    )
    return AttackOutcome(
        spec,
        x.detach().cpu(),
        x_adv.detach().cpu(),
        label,
        before,
        after,
        report,
        survival=saved,
        **extra,
    )


def check_survival(model: Classifier, outcome: AttackOutcome, jpeg_quality: int) -> AttackOutcome:
    """``outcome`` re-checked for a new JPEG quality (1 to 100; 0: PNG only). Forward passes."""
    spec = replace(outcome.spec, jpeg_quality=jpeg_quality)
    x_adv = outcome.x_adv.to(model.device)
    target = [spec.target] if spec.targeted else None
    saved = survival(
        model,
        x_adv,
        [outcome.label],
        targeted=spec.targeted,
        target=target,
        jpeg_quality=jpeg_quality or None,
    )
    return replace(outcome, spec=spec, survival=saved)


def attack_image(
    model: Classifier, x: torch.Tensor, spec: AttackSpec, surrogate: nn.Module | None = None
) -> Job[AttackOutcome]:
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
            raise ConfigError(
                f"target class {spec.target} is outside the model's classes 0..{n - 1}"
            )
        if spec.target == label:
            raise ConfigError(
                f"the target class {model.class_names[label]!r} is already the "
                "true class; pick another target"
            )
    label_t = torch.tensor([label], device=device)
    goal = torch.tensor([spec.target if spec.targeted else label], device=device)
    target = goal if spec.targeted else None
    generator = torch.Generator(device=device.type).manual_seed(spec.seed)
    entry, params = spec.entry, spec.params
    yield Progress(0, 2 if spec.quantise else 1, f"{entry.title} ({spec.access.value})")
    queries = surrogate_success = direction = None
    if spec.access is Access.WHITEBOX:
        if spec.attack == "fgsm":  # keep the sign: the eps slider re-applies it (fgsm_at)
            direction = fgsm_direction(model, x, goal, targeted=spec.targeted)
            x_adv = apply_direction(x, direction, spec.eps)
        else:
            x_adv = entry.run(
                model, x, label_t, params, target=target, generator=generator, seed=spec.seed
            ).x_adv
    elif spec.access is Access.TRANSFER:
        if surrogate is None:
            raise ConfigError("a transfer attack needs a surrogate model")
        surrogate = surrogate.to(device)

        def on_surrogate(
            m: nn.Module, xb: torch.Tensor, labels: torch.Tensor, targeted: bool
        ) -> torch.Tensor:
            return entry.run(
                m,
                xb,
                labels,
                params,
                target=labels if targeted else None,
                generator=generator,
                seed=spec.seed,
            ).x_adv

        res = transfer(
            surrogate, as_predict(model), x, goal, attack=on_surrogate, targeted=spec.targeted
        )
        x_adv, queries = res.x_adv, res.queries
        surrogate_success = bool(res.surrogate_success[0])
    else:
        res = entry.run(
            model, x, label_t, params, target=target, generator=generator, seed=spec.seed
        )
        x_adv, queries = res.x_adv, int(res.queries[0])
    method = None
    if spec.quantise:
        yield Progress(1, 2, "rounding onto the 1/255 grid")
        x_adv, method = _quantise(model, x, x_adv.detach(), spec, label_t)
    yield Progress(1, 1, "measuring")
    return measure(
        model,
        x,
        x_adv.detach(),
        spec,
        label,
        before,
        queries=queries,
        surrogate_success=surrogate_success,
        direction=None if direction is None else direction.detach().cpu(),
        quantise_method=method,
    )


def _quantise(
    model: Classifier, x: torch.Tensor, x_adv: torch.Tensor, spec: AttackSpec, label: torch.Tensor
) -> tuple[torch.Tensor, str]:
    """``x_adv`` on the 1/255 grid within the attack's ball, repaired where possible."""
    steps = QUANTISE_STEPS if spec.access is Access.WHITEBOX else 0
    eps = quantise_budget(spec, x, x_adv)
    if spec.targeted:
        res = quantise_adversarial(
            model, x, x_adv, label, eps, targeted=True, target=[spec.target], steps=steps
        )
    else:
        res = quantise_adversarial(model, x, x_adv, label, eps, steps=steps)
    return res.x_q.to(x.device), res.method[0]


def has_input_gradients(model: Classifier) -> bool:
    """Whether white-box attacks can run on ``model``: one backward pass on a blank image.
    False for models that give no gradient to their input (e.g. a scripted model run under
    ``no_grad``); those are offered the black-box attacks only."""
    x = torch.full((1, *model.input_shape), 0.5, device=model.device)
    try:
        fgsm_direction(model, x, torch.zeros(1, dtype=torch.long, device=model.device))
    except AttackError:
        return False
    return True


def fgsm_at(
    model: Classifier, outcome: AttackOutcome, eps: float, *, check_saving: bool = True
) -> AttackOutcome:
    """Re-apply a white-box FGSM outcome's cached gradient sign at another ``eps``: one clip and
    a few cheap forward passes (report, survival), no gradient unless ``spec.quantise`` must
    repair the rounded image. For the interactive slider.

    ``check_saving=False``: exactly one forward pass (of the new image; the clean image's
    prediction is the outcome's), no survival check (``survival`` None: check it afterwards
    with :func:`check_survival`). On a 224×224 ResNet on the CPU each forward is ~100 ms, and
    the full measure takes four or five."""
    if outcome.direction is None:
        raise ConfigError("only a white-box FGSM result can be re-applied at another epsilon")
    check_eps(eps)
    device = model.device
    x = outcome.x.to(device)
    x_adv = apply_direction(x, outcome.direction.to(device), eps)
    spec = replace(outcome.spec, eps=eps)
    method = None
    if spec.quantise:
        x_adv, method = _quantise(
            model, x, x_adv, spec, torch.tensor([outcome.label], device=device)
        )
    if not check_saving:
        return _moved(model, outcome, x, x_adv, spec, method)
    return measure(
        model,
        x,
        x_adv,
        spec,
        outcome.label,
        outcome.before,
        direction=outcome.direction,
        quantise_method=method,
    )


def _moved(
    model: Classifier,
    outcome: AttackOutcome,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    spec: AttackSpec,
    method: str | None,
) -> AttackOutcome:
    """``outcome`` at the new ``x_adv`` from one forward pass: top-5 and report after, the
    clean prediction and label kept, the perturbation measures recomputed."""
    with eval_mode(model), torch.no_grad():
        logits = model(x_adv).float()
    require_finite_scores(logits, getattr(model, "name", "model"), "the adversarial image")
    probs = torch.softmax(logits, 1)[0].cpu()
    top = probs.topk(min(5, len(probs)))
    names = list(model.class_names)
    indices = top.indices.tolist()
    after = Prediction(indices, [names[i] for i in indices], top.values.tolist())
    success = indices[0] == spec.target if spec.targeted else indices[0] != outcome.label
    report = replace(
        outcome.report,
        pred_after=indices[0],
        conf_after=float(top.values[0]),
        success=bool(success),
        linf=float(linf(x, x_adv)[0]),
        l2=float(l2(x, x_adv)[0]),
        l0=int(l0(x, x_adv)[0]),
        psnr=float(psnr(x, x_adv)[0]),
        ssim=float(ssim(x, x_adv)[0]),
    )
    return replace(
        outcome,
        spec=spec,
        x_adv=x_adv.detach().cpu(),
        after=after,
        report=report,
        survival=None,
        quantise_method=method,
    )


# --------------------------------------------------------------------------- input defences

DEFENCES = {
    "none": "None",
    "jpeg": "JPEG",
    "bit_depth": "Bit depth",
    "median": "Median",
    "resize_pad": "Random resize + pad",
    "noise": "Gaussian noise",
}
"""Input-transform defences the tab offers (keys of ``TRANSFORMS`` plus ``none``)."""
DEFENCE_PARAMETERS = {
    "jpeg": ("quality", 1, 100, 75),
    "bit_depth": ("bits", 1, 8, 2),
    "median": ("window", 1, 7, 2),
    "resize_pad": ("shrink", 0, 14, 4),
    "noise": ("sigma", 0, 100, 25),
}
"""Per defence: (parameter name, lowest, highest, default) as the tab's spin box offers it."""


def make_transform(defence: str, parameter: int) -> nn.Module | None:
    """The transform of ``defence`` ("none", "jpeg", "bit_depth", "median") with its
    ``parameter`` (JPEG quality 1-100, bits 1-8, median window >= 1); None for "none"."""
    if defence == "none":
        return None
    if defence not in TRANSFORMS:
        raise ConfigError(f"unknown defence {defence!r}; allowed: {', '.join(DEFENCES)}")
    return TRANSFORMS[defence](parameter)


@dataclass
class DefenceAttack:
    """One attack on the defended model. ``x_adv`` / ``pred`` None with ``error`` set when the
    attack could not run (no gradient through the transform: JPEG without BPDA)."""

    name: str
    x_adv: torch.Tensor | None
    pred: Prediction | None
    success: bool | None
    linf: float | None
    error: str | None = None


@dataclass
class DefenceComparison:
    """The current image against one input-transform defence: the defended model's top-5 on the
    clean image, and after PGD through the defence (``plain``) and PGD with BPDA (``bpda``, None
    without a defence). ``label``: the class the attacks push away from."""

    defence: str
    parameter: int
    eps: float
    steps: int
    label: int
    clean: Prediction
    plain: DefenceAttack
    bpda: DefenceAttack | None
    eot: DefenceAttack | None = None  # EoT-PGD, for a randomised defence only


def compare_defence(
    model: Classifier,
    x: torch.Tensor,
    *,
    defence: str,
    parameter: int,
    eps: float,
    steps: int = 20,
    label: int = -1,
    seed: int = 0,
) -> Job[DefenceComparison]:
    """PGD (``steps`` steps of ``2.5 eps / steps`` from a seeded random start, untargeted) on
    ``model`` behind the ``defence`` transform, first differentiating the whole pipeline (gradient
    masking: zero through bit depth, absent through JPEG, which is reported as an error, not
    raised), then with BPDA (identity backward pass). ``label``: the true class, -1 for the
    undefended model's prediction. ``x``: (1, C, H, W) or (C, H, W) in [0, 1]."""
    eps = check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a whole number >= 1, not {steps!r}")
    transform = make_transform(defence, parameter)
    device = model.device
    x = (x.unsqueeze(0) if x.dim() == 3 else x).to(device)
    if label < 0:
        label = model.predict(x, k=1)[0].indices[0]
    y = torch.tensor([label], device=device)
    shielded = model if transform is None else defended(model, transform)
    yield Progress(0, 3, f"{DEFENCES[defence]}: clean prediction")
    clean = shielded.predict(x, k=5)[0]

    randomised = isinstance(transform, RANDOM_TRANSFORMS)
    stages = 4 if randomised else 3

    def attack(target: nn.Module, name: str, samples: int = 0) -> DefenceAttack:
        generator = torch.Generator(device=device.type).manual_seed(seed)
        try:
            if samples:
                x_adv = eot_pgd(
                    target,
                    x,
                    y,
                    eps,
                    alpha=2.5 * eps / steps,
                    steps=steps,
                    samples=samples,
                    seed=seed,
                )
            else:
                x_adv = pgd(
                    target, x, y, eps, alpha=2.5 * eps / steps, steps=steps, generator=generator
                )
        except AttackError as exc:
            return DefenceAttack(name, None, None, None, None, str(exc))
        with seeded(seed + 1, device):  # a randomised defence judges with one seeded draw
            pred = shielded.predict(x_adv, k=5)[0]  # judged by the deployed (defended) model
        return DefenceAttack(
            name, x_adv.detach().cpu(), pred, pred.indices[0] != label, float(linf(x, x_adv)[0])
        )

    yield Progress(1, stages, "PGD through the defence")
    plain = attack(shielded, "PGD")
    bpda = eot = None
    if transform is not None:
        yield Progress(2, stages, "PGD with BPDA")
        bpda = attack(defended(model, transform, bpda=True), "BPDA")
    if randomised:
        yield Progress(3, stages, "EoT-PGD")
        eot = attack(shielded, "EoT-PGD", samples=DEFAULT_SAMPLES)
    return DefenceComparison(defence, parameter, eps, steps, label, clean, plain, bpda, eot)


@dataclass
class DetectorCheck:
    """The feature-squeezing detector fitted on ``n_clean`` clean images for a
    ``false_alarm_rate``: its ``threshold`` and the score / verdict of the original image and
    (when given) the adversarial one."""

    false_alarm_rate: float
    threshold: float
    n_clean: int
    score_original: float
    detected_original: bool
    score_adversarial: float | None = None
    detected_adversarial: bool | None = None


def detector_check(
    model: Classifier,
    x: torch.Tensor,
    x_adv: torch.Tensor | None,
    false_alarm_rate: float,
    clean_x: torch.Tensor,
) -> Job[DetectorCheck]:
    """Fit :class:`~advstudio.core.attacks.transforms.FeatureSqueezingDetector` (the paper's
    squeezers for the images' colour, :func:`~advstudio.core.attacks.transforms.squeezers_for`)
    on ``clean_x`` for ``false_alarm_rate`` in (0, 1), then score ``x`` and ``x_adv``
    ((1, C, H, W) in [0, 1])."""
    rate = check_rate(false_alarm_rate, "false-alarm rate")
    device = model.device
    detector = FeatureSqueezingDetector(model, squeezers_for(int(clean_x.shape[1])))
    yield Progress(0, 2, f"fitting the detector on {len(clean_x)} clean images")
    threshold = detector.fit_threshold(clean_x.to(device), rate)
    yield Progress(1, 2, "scoring")
    images = [x] if x_adv is None else [x, x_adv]
    scores = detector.score(torch.cat([i.to(device) for i in images])).cpu()
    out = DetectorCheck(
        rate, threshold, len(clean_x), float(scores[0]), bool(scores[0] > threshold)
    )
    if x_adv is not None:
        out.score_adversarial = float(scores[1])
        out.detected_adversarial = bool(scores[1] > threshold)
    return out


# --------------------------------------------------------------------------- distance to boundary


@dataclass
class BoundaryRow:
    """One method's smallest flipping perturbation of the image: its size (NaN when it failed),
    the adversarial image and the model's top class on it."""

    method: str
    l2: float
    linf: float
    success: bool
    pred_after: int
    x_adv: torch.Tensor


BOUNDARY_NAMES = {"fgsm": "FGSM (smallest ε)", "deepfool": "DeepFool", "cw": "C&W L2"}


def distance_to_boundary(
    model: Classifier,
    x: torch.Tensor,
    label: int = -1,
    *,
    cw_steps: int = 100,
    cw_search_steps: int = 5,
) -> Job[list[BoundaryRow]]:
    """How far the decision boundary is from ``x`` ((1, C, H, W) in [0, 1]): FGSM's smallest
    flipping eps, DeepFool and C&W L2 (``cw_steps`` Adam steps times ``cw_search_steps`` rounds),
    by :func:`~advstudio.core.attacks.minimal.minimal_norms`, one method per progress step.
    ``label``: the true class, -1 for the model's prediction."""
    device = model.device
    x = (x.unsqueeze(0) if x.dim() == 3 else x).to(device)
    if label < 0:
        label = model.predict(x, k=1)[0].indices[0]
    y = torch.tensor([label], device=device)
    methods = tuple(BOUNDARY_NAMES)
    options = {"cw": {"steps": cw_steps, "search_steps": cw_search_steps}}
    rows = []
    for i, method in enumerate(methods):
        yield Progress(i, len(methods), BOUNDARY_NAMES[method])
        res = minimal_norms(
            model, x, y, methods=(method,), options={method: options.get(method, {})}
        )[method]
        pred = model.predict(res.x_adv.to(device), k=1)[0].indices[0]
        rows.append(
            BoundaryRow(
                method, float(res.l2[0]), float(res.linf[0]), bool(res.success[0]), pred, res.x_adv
            )
        )
    yield Progress(len(methods), len(methods), "done")
    return rows
