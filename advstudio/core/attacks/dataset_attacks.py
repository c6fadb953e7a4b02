"""The two attacks fitted on a data set, as job kinds: the adversarial patch (``patch``,
:mod:`advstudio.core.attacks.patch`) and the universal perturbation (``universal``,
:mod:`advstudio.core.attacks.universal`). The Attack tab's Patch and Universal panels build
these configs and run these jobs through the run store, as ``advstudio-run`` does, so a run is
driven and recorded the same way from either.

``run_patch(config)``: trains one patch (EoT) towards ``target`` at ``area``, then, as
``curve`` asks, its success against the patch sizes ``areas`` (``"rescale"``: that patch
pasted at each size; ``"retrain"``: one patch trained per size, and no single patch first).
``run_universal(config)``: fits one perturbation at ``eps`` (Algorithm 1), then, as ``curve``
asks, its fooling rate against ``epsilons`` (``"rescale"``: that perturbation rescaled;
``"refit"``: one fit per ε, and no single fit first).

The results are plain values: the patch (C, S, S) and the perturbation (C, H, W) as nested
lists (kept in the run's ``result.json``; ``patch_result()`` / ``universal_result()`` give the
tensors back, float32 exactly), the rates, the curves; the last preview of the patch or the
(amplified) perturbation is kept as ``artifacts/patch.png`` / ``perturbation.png``. The
per-size patches of a retrained curve are kept too; the per-ε perturbations of a refit curve
are not (one per ε at the model's input size; a rerun of the config gives them back).

The app passes its loaded model (``model=``) and, for a curve of the patch or perturbation it
already has, that result (``trained=`` / ``fitted=``) instead of training it again: the config
it records holds the settings that result was made with, so a rerun gives the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from advstudio.core import validate as v
from advstudio.core.attacks.patch import (
    PatchResult,
    SizeCurve,
    retrained_size_curve_job,
    size_curve_job,
    train_patch_job,
    train_test_images,
)
from advstudio.core.attacks.universal import (
    EpsCurve,
    UniversalResult,
    eps_curve_job,
    rescaled_curve_job,
    universal_job,
)
from advstudio.core.data.fields import check_fields
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Log, Preview
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

DRY_RUN_IMAGES = 8  # images to fit on and to judge on in a dry run
DRY_RUN_STEPS = 2  # patch training steps in a dry run
PATCH_CURVES = ("none", "rescale", "retrain")
UNIVERSAL_CURVES = ("none", "rescale", "refit")


def _areas(values: Any) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        v.fail("areas", "a list of shares of the image in (0, 0.5]", values)
    if not values:
        raise ConfigError("areas must hold at least one patch size (share of the image)")
    return tuple(v.number("areas", a, high=0.5, above=0, hint="share of the image") for a in values)


def _epsilons(values: Any) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        v.fail("epsilons", "a list of numbers in [0, 1]", values)
    if not values:
        raise ConfigError("epsilons must hold at least one ε")
    return tuple(v.number("epsilons", e, 0, 1, hint="pixel units") for e in values)


def _common(config: Any) -> None:
    check_model_fields(config)
    v.whole("seed", config.seed)
    v.device(config.device)
    v.flag("dry_run", config.dry_run)
    check_fields(config)


@dataclass(frozen=True)
class PatchConfig:
    """``model`` / ``card``: as the sweep's (a registry key, ``file:`` with its card,
    ``memory:``). ``target``: the class the patch aims at; ``area``: its share of the image in
    (0, 0.5]; ``steps`` signed-gradient steps on batches of ``batch_size`` images. ``curve``:
    ``none``, ``rescale`` or ``retrain``, over ``areas``. ``n_train`` / ``n_test`` images of
    ``dataset`` (``split``, fitted to the model as ``fit`` says) to train on and to judge on.
    ``dry_run``: 8 + 8 images, 2 steps."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    target: int = 3
    area: float = 0.1
    steps: int = 300
    batch_size: int = 32
    curve: str = "none"
    areas: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)
    n_train: int = 200
    n_test: int = 200
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        _common(self)
        v.whole("target", self.target, 0, hint="a class of the model")
        v.number("area", self.area, high=0.5, above=0, hint="share of the image")
        v.whole("steps", self.steps, 1)
        v.whole("batch_size", self.batch_size, 1)
        v.choice("curve", self.curve, PATCH_CURVES)
        object.__setattr__(self, "areas", _areas(self.areas))
        v.whole("n_train", self.n_train, 1)
        v.whole("n_test", self.n_test, 1)


@dataclass(frozen=True)
class UniversalConfig:
    """``model`` / ``card``: as the sweep's. ``eps``: the L-inf radius of the one fit;
    ``target``: a class to send the images to, or none (untargeted: leave it out). ``passes``,
    ``delta``, ``inner_steps``: Algorithm 1's. ``curve``: ``none``, ``rescale`` or ``refit``,
    over ``epsilons``. ``n_fit`` / ``n_held`` images of ``dataset`` to fit on and to judge on.
    ``dry_run``: 8 + 8 images, one pass."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    eps: float = 0.1
    target: int | None = None
    passes: int = 5
    delta: float = 0.2
    inner_steps: int = 10
    curve: str = "none"
    epsilons: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2)
    n_fit: int = 200
    n_held: int = 200
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        _common(self)
        v.number("eps", self.eps, 0, 1, hint="pixel units")
        if self.target is not None:
            v.whole("target", self.target, 0, hint="a class of the model; leave it out: untargeted")
        v.whole("passes", self.passes, 1)
        v.number("delta", self.delta, 0, below=1)
        v.whole("inner_steps", self.inner_steps, 1)
        v.choice("curve", self.curve, UNIVERSAL_CURVES)
        object.__setattr__(self, "epsilons", _epsilons(self.epsilons))
        v.whole("n_fit", self.n_fit, 1)
        v.whole("n_held", self.n_held, 1)


def _listed(x: torch.Tensor) -> list:
    return x.detach().float().cpu().tolist()


def _tensor(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


@dataclass
class PatchRun:
    """A patch job's result, plain. ``patch``: (C, S, S) nested lists in [0, 1], or None for a
    retrained curve alone; ``success`` of ``n_test`` held-out images; ``history``: the loss per
    logged step. ``areas`` / ``size_success`` (and ``size_patches`` when ``curve`` is
    ``retrain``): the curve against size, empty without one."""

    target: int
    area: float
    patch: list | None = None
    success: float | None = None
    n_test: int = 0
    history: list[float] = field(default_factory=list)
    curve: str = "none"
    areas: list[float] = field(default_factory=list)
    size_success: list[float] = field(default_factory=list)
    size_patches: list[list] = field(default_factory=list)

    def patch_result(self) -> PatchResult | None:
        if self.patch is None:
            return None
        return PatchResult(
            _tensor(self.patch),
            self.target,
            self.area,
            self.success,
            list(self.history),
            self.n_test,
        )

    def size_curve(self) -> SizeCurve | None:
        if self.curve == "none":
            return None
        retrained = self.curve == "retrain"
        patches = [_tensor(p) for p in self.size_patches]
        return SizeCurve(list(self.areas), list(self.size_success), self.target, retrained, patches)


@dataclass
class UniversalRun:
    """A universal job's result, plain. ``v``: (C, H, W) nested lists, ``|v| <= eps``, or None
    for a refit curve alone; ``fit_rate`` / ``held_out_rate`` (of ``n_held`` images),
    ``history`` per pass. ``epsilons`` / ``held_out`` / ``fit``: the curve against ε, empty
    without one."""

    eps: float
    target: int | None
    v: list | None = None
    fit_rate: float | None = None
    held_out_rate: float | None = None
    n_held: int = 0
    history: list[float] = field(default_factory=list)
    curve: str = "none"
    epsilons: list[float] = field(default_factory=list)
    held_out: list[float] = field(default_factory=list)
    fit: list[float] = field(default_factory=list)

    def universal_result(self) -> UniversalResult | None:
        if self.v is None:
            return None
        return UniversalResult(
            _tensor(self.v),
            self.eps,
            self.target,
            self.fit_rate,
            self.held_out_rate,
            list(self.history),
            self.n_held,
        )

    def eps_curve(self) -> EpsCurve | None:
        if self.curve == "none":
            return None
        return EpsCurve(
            list(self.epsilons),
            list(self.held_out),
            list(self.fit),
            self.target,
            self.curve == "refit",
        )


def _model_and_data(config: Any, model: Any, n_a: int, n_b: int):
    """The model (``model`` as given, else loaded from the registry) and the two image sets on
    its device, with the lines to log."""
    if model is None:
        from advstudio.core.models.registry import load_model

        model = load_model(config.model, pick_device(config.device), card=config.card)
    if config.dry_run:
        n_a, n_b = min(n_a, DRY_RUN_IMAGES), min(n_b, DRY_RUN_IMAGES)
    x_a, x_b, lines = train_test_images(
        config.dataset, config.split, config.fit, model, n_a, n_b, config.seed
    )
    device = getattr(model, "device", None) or torch.device("cpu")
    return model, x_a.to(device), x_b.to(device), lines


def _check_target(model: Any, target: int | None) -> None:
    classes = getattr(model, "num_classes", None)
    if target is not None and classes is not None and target >= int(classes):
        raise ConfigError(f"target must be a class in [0, {int(classes) - 1}], not {target!r}")


def run_patch(
    config: PatchConfig, model: Any = None, trained: PatchResult | None = None
) -> Job[PatchRun]:
    """The ``patch`` job kind (see the module docstring). ``model``: the loaded model to use
    (else ``config.model`` is loaded); ``trained``: a patch already trained with this config's
    settings, used instead of training it again (a curve of the panel's patch)."""
    if not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # a torchvision set: once, with progress and Cancel
    model, x_train, x_test, lines = _model_and_data(config, model, config.n_train, config.n_test)
    _check_target(model, config.target)
    steps = min(config.steps, DRY_RUN_STEPS) if config.dry_run else config.steps
    yield Log(
        f"adversarial patch on {getattr(model, 'name', config.model)}: target {config.target}, "
        f"{len(x_train)} images to train on, {len(x_test)} to judge on, "
        + (
            f"one patch per size {', '.join(f'{a:g}' for a in config.areas)}"
            if config.curve == "retrain"
            else f"area {config.area:g}, {steps} steps"
        )
        + (f", then success against size {list(config.areas)}" if config.curve == "rescale" else "")
    )
    for line in lines:
        yield Log(line)
    train = {"steps": steps, "batch_size": config.batch_size, "seed": config.seed}
    out = PatchRun(config.target, config.area, curve=config.curve)
    if config.curve != "retrain":
        if trained is not None:
            yield Log("the patch trained earlier with these settings (not trained again)")
            res = trained
        else:
            res = yield from train_patch_job(
                model, x_train, x_test, config.target, area=config.area, **train
            )
        out.patch, out.success, out.n_test = _listed(res.patch), res.success, res.n_test
        out.history = list(res.history)
        if min(res.patch.shape[-2:]) >= 8:
            from advstudio.core.images import from_tensor

            yield Preview("patch", from_tensor(res.patch))
    if config.curve == "rescale":
        curve = yield from size_curve_job(
            model, x_test, _tensor(out.patch).to(x_test.device), config.target, config.areas, seed=1
        )
    elif config.curve == "retrain":
        curve = yield from retrained_size_curve_job(
            model, x_train, x_test, config.target, config.areas, **train
        )
        out.size_patches = [_listed(p) for p in curve.patches]
    if config.curve != "none":
        out.areas, out.size_success = list(curve.areas), list(curve.success)
    return out


def run_universal(
    config: UniversalConfig, model: Any = None, fitted: UniversalResult | None = None
) -> Job[UniversalRun]:
    """The ``universal`` job kind (see the module docstring). ``model``: the loaded model to use;
    ``fitted``: a perturbation already fitted with this config's settings, used instead of
    fitting it again (a rescaled curve of the panel's perturbation)."""
    if not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # a torchvision set: once, with progress and Cancel
    model, x_fit, x_held, lines = _model_and_data(config, model, config.n_fit, config.n_held)
    _check_target(model, config.target)
    passes = 1 if config.dry_run else config.passes
    aim = "untargeted" if config.target is None else f"towards class {config.target}"
    yield Log(
        f"universal perturbation on {getattr(model, 'name', config.model)}, {aim}: "
        f"{len(x_fit)} images to fit on, {len(x_held)} to judge on, "
        + (
            f"one fit per ε {', '.join(f'{e:g}' for e in config.epsilons)}"
            if config.curve == "refit"
            else f"ε {config.eps:g}, at most {passes} passes"
        )
        + (f", then rescaled to ε {list(config.epsilons)}" if config.curve == "rescale" else "")
    )
    for line in lines:
        yield Log(line)
    fit = {
        "target": config.target,
        "passes": passes,
        "delta": config.delta,
        "inner_steps": config.inner_steps,
        "seed": config.seed,
    }
    out = UniversalRun(config.eps, config.target, curve=config.curve)
    res = None
    if config.curve != "refit":
        if fitted is not None:
            yield Log("the perturbation fitted earlier with these settings (not fitted again)")
            res = fitted
        else:
            res = yield from universal_job(model, x_fit, x_held, config.eps, **fit)
        out.v, out.n_held, out.history = _listed(res.v), res.n_held, list(res.history)
        out.fit_rate, out.held_out_rate = res.fit_rate, res.held_out_rate
        if min(res.v.shape[-2:]) >= 8:
            from advstudio.core.images import from_tensor

            scale = 0.5 / res.eps if res.eps > 0 else 0.0
            yield Preview("perturbation", from_tensor((0.5 + scale * res.v.cpu()).clamp(0, 1)))
    if config.curve == "rescale":
        curve = yield from rescaled_curve_job(
            model,
            x_fit,
            x_held,
            res.v.to(x_fit.device),
            res.eps,
            config.epsilons,
            config.target,
        )
    elif config.curve == "refit":
        curve = yield from eps_curve_job(model, x_fit, x_held, config.epsilons, **fit)
    if config.curve != "none":
        out.epsilons, out.held_out, out.fit = list(curve.eps), curve.held_out, curve.fit
    return out
