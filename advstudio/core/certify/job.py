"""The certification jobs for ``advstudio-run`` and the Defence tab.

- :func:`run_smoothing`: randomised smoothing's certified L2 radius per test digit (lower
  bound), beside the smallest L2 perturbation DeepFool and C&W find on the base classifier
  (upper bounds on the base classifier's own robustness), and certified accuracy at radii.
- :func:`run_ibp`: verified L-inf accuracy by interval bound propagation at ``eps`` (lower
  bound) beside PGD-20 accuracy (upper bound) and clean accuracy.

``run_smoothing`` with ``smooth_pgd`` on also attacks the smoothed classifier itself
(:mod:`.bounds`): per image the smallest L2 perturbation found, and empirical accuracy at
radii, so the CLI writes both bounds. :func:`certify_model` is the same job on a model object
and given images (the Certify tab's current model and image).

Results are dataclasses of plain numbers and lists (they go to JSON).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from advstudio.core import validate as v
from advstudio.core.attacks.minimal import minimal_norms
from advstudio.core.attacks.whitebox import eval_mode, pgd
from advstudio.core.certify.bounds import SmoothAttack, empirical_accuracy, smooth_pgd_l2
from advstudio.core.certify.ibp import ibp_layers, verified
from advstudio.core.certify.smoothing import (
    Certificate,
    Smoothing,
    certified_accuracy,
    certify_images,
    largest_radius,
)
from advstudio.core.data import load_digits
from advstudio.core.data.spec import check_dataset, check_fit, check_split
from advstudio.core.devices import pick_device
from advstudio.core.jobs import Job, Log, Metrics, Progress, in_phase, relay
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

ATTACK_CHUNK = 16
"""Images per DeepFool / C&W call: the job yields between chunks, so cancel stays prompt."""
PGD_STEPS_TO_STEP = 2.5
"""PGD's step is ``2.5 * eps / steps`` (Madry et al.'s rule: the walk can cross the ball)."""


def _test_images(config, n_images: int, model) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The images a certification job reads: the first ``n_images`` bundled test digits (as
    every figure so far), or ``n_images`` of any other set of the shared data choice (``data``,
    ``split``, ``fit``: a seeded subset, fitted to the model as the sweep's are), with what to
    log about them."""
    if config.data == "digits":
        x, y = load_digits("test")
        return x[:n_images], y[:n_images], []
    from advstudio.core.data.fields import job_images

    images = job_images(config.data, config.split, n_images, config.seed, model, config.fit)
    return images.x, images.y, list(images.lines)


def _check_data(config) -> None:
    check_dataset(config.data, "data")
    check_split(config.split)
    check_fit(config.fit)


# --------------------------------------------------------------------------- smoothing


@dataclass(frozen=True)
class SmoothingConfig:
    """``model``: a registry key. ``n_images``: the first test digits. ``sigma``, ``n0``, ``n``,
    ``alpha``, ``batch_size``: see :class:`~advstudio.core.certify.smoothing.Smoothing`.
    ``radii``: L2 radii of the certified-accuracy curve. ``cw_steps``: Adam steps per C&W
    search round (5 rounds); ``base_attacks`` off skips DeepFool and C&W (the curves do not
    use them; C&W is most of a run's time). ``seed``: the noise. ``smooth_pgd``: also attack
    the smoothed classifier (:mod:`.bounds`) at ``smooth_pgd_radii`` with ``smooth_pgd_steps``
    steps of ``smooth_pgd_samples`` noise draws. ``dry_run``: 1 image, n0 10, n 50, 5 C&W steps,
    smooth
    PGD at the first radius only with 2 steps of 4 draws.
    """

    model: str = "digits-cnn"
    card: ModelCard | None = None
    data: str = "digits"
    split: str = "test"
    fit: str = "none"
    n_images: int = 100
    sigma: float = 0.25
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    batch_size: int = 400
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    cw_steps: int = 100
    base_attacks: bool = True
    smooth_pgd: bool = False
    smooth_pgd_radii: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
    smooth_pgd_steps: int = 20
    smooth_pgd_samples: int = 32
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_model_fields(self)
        _check_data(self)
        v.whole("n_images", self.n_images, 1, 1000)
        self.smoothing()
        v.flag("base_attacks", self.base_attacks)
        v.flag("smooth_pgd", self.smooth_pgd)
        self.attack()
        if isinstance(self.radii, str) or not self.radii:
            v.fail("radii", "a non-empty list of L2 radii >= 0", self.radii)
        for r in self.radii:
            v.number("radii", r, 0)
        v.whole("cw_steps", self.cw_steps, 1)
        v.whole("seed", self.seed, 0)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)

    def smoothing(self) -> Smoothing:
        """The smoothing settings (checked); the dry run's are tiny."""
        if self.dry_run:
            return Smoothing(
                self.sigma, min(self.n0, 10), min(self.n, 50), self.alpha, self.batch_size
            )
        return Smoothing(self.sigma, self.n0, self.n, self.alpha, self.batch_size)

    def attack(self) -> SmoothAttack:
        """The smooth-PGD settings (checked); the dry run's are tiny."""
        if self.dry_run:
            return SmoothAttack(tuple(self.smooth_pgd_radii)[:1], 2, 4)
        return SmoothAttack(
            tuple(self.smooth_pgd_radii), self.smooth_pgd_steps, self.smooth_pgd_samples
        )


@dataclass(frozen=True)
class SmoothedImage:
    """One test digit: its label, the base classifier's class, the smoothed class (-1 =
    abstain), the lower bound on its probability, the certified L2 radius (0 when abstaining)
    and the L2 size of the smallest flip DeepFool / C&W found on the base classifier (0 when
    the base classifier is already wrong, None when the attack failed); ``smooth_pgd_l2``: the
    smallest smooth-PGD perturbation found that changes the smoothed prediction (0 when it is
    already wrong, None when none was found or the attack was not run)."""

    index: int
    label: int
    base_prediction: int
    prediction: int
    p_lower: float
    radius: float
    deepfool_l2: float | None
    cw_l2: float | None
    smooth_pgd_l2: float | None = None


@dataclass(frozen=True)
class SmoothingResult:
    model: str
    sigma: float
    n0: int
    n: int
    alpha: float
    radii: list[float]
    certified_accuracy: list[float]  # one per radius
    largest_radius: float  # no certificate can reach further at this sigma, n and alpha
    base_accuracy: float
    abstain_rate: float
    images: list[SmoothedImage]
    smooth_pgd_radii: list[float] = field(default_factory=list)  # empty: not attacked
    empirical_accuracy: list[float] = field(default_factory=list)  # one per smooth_pgd radius


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _base_attacks(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cw_steps: int
) -> Job[tuple[list[int], list[float | None], list[float | None]]]:
    """Base predictions and DeepFool / C&W minimal L2 per image, in chunks (a Progress each)."""
    preds: list[int] = []
    deepfool_l2: list[float | None] = []
    cw_l2: list[float | None] = []
    for start in range(0, len(x), ATTACK_CHUNK):
        xb, yb = x[start : start + ATTACK_CHUNK], y[start : start + ATTACK_CHUNK]
        with eval_mode(model), torch.no_grad():
            preds += model(xb).argmax(1).tolist()
        norms = minimal_norms(
            model, xb, yb, methods=("deepfool", "cw"), options={"cw": {"steps": cw_steps}}
        )
        deepfool_l2 += [_finite_or_none(d) for d in norms["deepfool"].l2.tolist()]
        cw_l2 += [_finite_or_none(c) for c in norms["cw"].l2.tolist()]
        yield Progress(len(preds), len(x), "DeepFool and C&W on the base classifier")
    return preds, deepfool_l2, cw_l2


def run_smoothing(config: SmoothingConfig) -> Job[SmoothingResult]:
    """Certify the first ``n_images`` test digits with randomised smoothing (Cohen et al.
    2019), attack the base classifier with DeepFool and C&W and, with ``smooth_pgd``, the
    smoothed classifier (:func:`certify_model` on the registry model ``config.model``)."""
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    if not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.data)  # a torchvision set: once, with progress and Cancel
    model = load_model(config.model, device, card=config.card)
    x, y, lines = _test_images(config, 1 if config.dry_run else config.n_images, model)
    for line in lines:
        yield Log(line)
    return (yield from certify_model(model, x, y, config))


def certify_model(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: SmoothingConfig
) -> Job[SmoothingResult]:
    """:func:`run_smoothing` on a given model (on its device) and images ``x`` (N, C, H, W) in
    [0, 1] with labels ``y`` (``config.model``, ``n_images`` and ``data`` only name them).
    Progress in three phases, each counting its own units (their speeds differ a hundredfold,
    so each gets its own ETA): the base attacks (a unit per image), CERTIFY (a unit per image,
    each with its Metrics), then smooth PGD (a unit per radius)."""
    device = next(model.parameters()).device
    smoothing, attack = config.smoothing(), config.attack()
    x, y = x.to(device), y.to(device)
    n = len(x)
    yield Log(
        f"randomised smoothing of {getattr(model, 'name', config.model)}: sigma "
        f"{smoothing.sigma:g}, n0 {smoothing.n0}, n {smoothing.n}, alpha "
        f"{smoothing.alpha:g}, {n} images"
    )
    if config.base_attacks:
        base, deepfool_l2, cw_l2 = yield from relay(
            _base_attacks(model, x, y, 5 if config.dry_run else config.cw_steps),
            in_phase(f"DeepFool and C&W on {n:,} images"),
        )
    else:
        with eval_mode(model), torch.no_grad():
            base = model(x).argmax(1).tolist()
        deepfool_l2 = cw_l2 = [None] * n

    generator = torch.Generator(device=device).manual_seed(config.seed)
    certificates = yield from relay(
        certify_images(model, x, smoothing, generator),
        in_phase(f"certifying {n:,} images ({smoothing.n0 + smoothing.n:,} noisy copies each)"),
    )
    labels = y.tolist()
    predictions = [c.prediction for c in certificates]
    found: list[float | None] = [None] * n
    if config.smooth_pgd:
        found = yield from relay(
            smooth_pgd_l2(
                model,
                x,
                y,
                smoothing,
                attack,
                generator,
                [p != t for p, t in zip(predictions, labels)],
            ),
            in_phase(f"smooth PGD at {len(attack.radii)} radii"),
        )
    radii = [float(r) for r in config.radii]
    pgd_radii = [float(r) for r in attack.radii] if config.smooth_pgd else []
    images = [
        SmoothedImage(
            i,
            labels[i],
            base[i],
            c.prediction,
            c.p_lower,
            c.radius,
            deepfool_l2[i],
            cw_l2[i],
            found[i],
        )
        for i, c in enumerate(certificates)
    ]
    return SmoothingResult(
        config.model,
        smoothing.sigma,
        smoothing.n0,
        smoothing.n,
        smoothing.alpha,
        radii,
        [certified_accuracy(labels, certificates, r) for r in radii],
        largest_radius(smoothing),
        sum(b == t for b, t in zip(base, labels)) / n,
        sum(c.abstained for c in certificates) / n,
        images,
        pgd_radii,
        [empirical_accuracy(labels, predictions, found, r) for r in pgd_radii],
    )


def smoothing_to_csv(result: SmoothingResult, path: str | Path) -> Path:
    """One row per image: index, label, base_prediction, prediction (-1 = abstain), p_lower,
    radius, deepfool_l2, cw_l2, smooth_pgd_l2 (empty where the attack failed or did not run),
    sigma, n."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "index",
                "label",
                "base_prediction",
                "prediction",
                "p_lower",
                "radius",
                "deepfool_l2",
                "cw_l2",
                "smooth_pgd_l2",
                "sigma",
                "n",
            ]
        )
        for im in result.images:
            writer.writerow(
                [
                    im.index,
                    im.label,
                    im.base_prediction,
                    im.prediction,
                    f"{im.p_lower:.6g}",
                    f"{im.radius:.6g}",
                    "" if im.deepfool_l2 is None else f"{im.deepfool_l2:.6g}",
                    "" if im.cw_l2 is None else f"{im.cw_l2:.6g}",
                    "" if im.smooth_pgd_l2 is None else f"{im.smooth_pgd_l2:.6g}",
                    f"{result.sigma:g}",
                    result.n,
                ]
            )
    return path


# --------------------------------------------------------------------------- IBP


@dataclass(frozen=True)
class IbpConfig:
    """``model``: a registry key (its layers must be ones IBP bounds, see
    :mod:`~advstudio.core.certify.ibp`). ``eps``: the L-inf radius (pixel scale).
    ``pgd_steps``: PGD's steps (step ``2.5 eps / steps``, random start from ``seed``).
    ``dry_run``: one batch of 4 images, 2 PGD steps."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    data: str = "digits"
    split: str = "test"
    fit: str = "none"
    n_images: int = 1000
    eps: float = 0.1
    pgd_steps: int = 20
    batch_size: int = 100
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_model_fields(self)
        _check_data(self)
        v.whole("n_images", self.n_images, 1, 1000)
        v.number("eps", self.eps, above=0, high=1, hint="pixel scale")
        v.whole("pgd_steps", self.pgd_steps, 1)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("seed", self.seed, 0)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)


@dataclass(frozen=True)
class IbpResult:
    model: str
    eps: float
    n_images: int
    clean_accuracy: float
    pgd_accuracy: float
    verified_accuracy: float
    correct: list[bool]  # per image: clean prediction right
    pgd_robust: list[bool]  # per image: still right after PGD
    verified: list[bool]  # per image: IBP proves no point of the box changes the class


def run_ibp(config: IbpConfig) -> Job[IbpResult]:
    """Verified accuracy by IBP at ``eps`` (a lower bound on robust accuracy), PGD accuracy
    (an upper bound) and clean accuracy, per batch (Progress and Metrics each)."""
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    if not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.data)  # a torchvision set: once, with progress and Cancel
    model = load_model(config.model, device, card=config.card)
    x, y, lines = _test_images(config, 4 if config.dry_run else config.n_images, model)
    for line in lines:
        yield Log(line)
    return (yield from verify_model(model, x, y, config))


def verify_model(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: IbpConfig
) -> Job[IbpResult]:
    """:func:`run_ibp` on a given model (on its device) and images ``x`` with labels ``y``
    (``config.model`` and ``n_images`` only name them). :class:`ConfigError` names a layer IBP
    cannot bound (:func:`~advstudio.core.certify.ibp.ibp_layers`) before any work."""
    ibp_layers(model)
    device = next(model.parameters()).device
    steps = 2 if config.dry_run else config.pgd_steps
    generator = torch.Generator(device=device).manual_seed(config.seed)
    correct: list[bool] = []
    robust: list[bool] = []
    proven: list[bool] = []
    phase = f"IBP bounds and PGD on {len(x):,} images"
    yield Progress(0, len(x), f"IBP and PGD at eps {config.eps:g}", phase)
    for step, start in enumerate(range(0, len(x), config.batch_size)):
        xb = x[start : start + config.batch_size].to(device)
        yb = y[start : start + config.batch_size].to(device)
        proven += verified(model, xb, yb, config.eps).tolist()
        x_adv = pgd(
            model,
            xb,
            yb,
            config.eps,
            alpha=PGD_STEPS_TO_STEP * config.eps / steps,
            steps=steps,
            generator=generator,
        )
        with eval_mode(model), torch.no_grad():
            correct += (model(xb).argmax(1) == yb).tolist()
            robust += (model(x_adv).argmax(1) == yb).tolist()
        done = len(correct)
        yield Metrics(
            step,
            {
                "clean_accuracy": sum(correct) / done,
                "pgd_accuracy": sum(robust) / done,
                "verified_accuracy": sum(proven) / done,
            },
        )
        yield Progress(done, len(x), f"IBP and PGD at eps {config.eps:g}", phase)
    n = len(correct)
    return IbpResult(
        config.model,
        config.eps,
        n,
        sum(correct) / n,
        sum(robust) / n,
        sum(proven) / n,
        correct,
        robust,
        proven,
    )


def certified_curve(result: SmoothingResult, radii: list[float]) -> list[float]:
    """Certified accuracy of ``result``'s images at any ``radii`` (abstentions count as wrong),
    from the per-image certificates: the lower curve of a plot at finer radii than
    ``result.radii``."""
    labels = [im.label for im in result.images]
    certificates = [Certificate(im.prediction, im.p_lower, im.radius) for im in result.images]
    return [certified_accuracy(labels, certificates, r) for r in radii]


def curves_to_csv(result: SmoothingResult, radii: list[float], path: str | Path) -> Path:
    """One row per radius: certified accuracy (lower bound) and, at smooth PGD's radii,
    empirical accuracy (upper bound; empty elsewhere), plus sigma, n and the abstention rate."""
    path = Path(path)
    empirical = dict(zip(result.smooth_pgd_radii, result.empirical_accuracy))
    points = sorted(set(radii) | set(empirical))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["radius", "certified_accuracy", "empirical_accuracy", "sigma", "n", "abstain_rate"]
        )
        for r, c in zip(points, certified_curve(result, points)):
            writer.writerow(
                [
                    f"{r:.6g}",
                    f"{c:.6g}",
                    "" if r not in empirical else f"{empirical[r]:.6g}",
                    f"{result.sigma:g}",
                    result.n,
                    f"{result.abstain_rate:.6g}",
                ]
            )
    return path
