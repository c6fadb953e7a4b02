"""Distance to the decision boundary over a data set: per image, the smallest perturbation that
FGSM (its smallest flipping eps), DeepFool and C&W L2 each need to change the model's answer.

The Attack tab's "Distance to boundary" panel runs :func:`distance_to_boundary` of
:mod:`~advstudio.core.attacks.lab` on the current image; this is the same measure on ``n_images``
of any data set at its native shape (:mod:`advstudio.core.data`), any C×H×W and class count:

- :func:`boundary_distances`: an in-memory classifier and images (N, C, H, W) in [0, 1];
- :func:`run_boundary`: the job (``advstudio-run`` kind ``boundary``) on a registry model.

Norms are over all pixel values, channels included, pixels in [0, 1]. DeepFool considers the
``deepfool_classes`` most likely classes of each image (Moosavi-Dezfooli et al. use 10 on
ImageNet: each candidate costs a backward pass per step).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch
from torch import nn

from advstudio.core import validate as v
from advstudio.core.attacks.minimal import MINIMAL_METHODS, minimal_norms
from advstudio.core.attacks.whitebox import as_labels, check_images, eval_mode
from advstudio.core.data.fields import check_fields
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Log, Metrics, Progress
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

DRY_RUN_IMAGES = 4
METHOD_NAMES = {"fgsm": "FGSM (smallest ε)", "deepfool": "DeepFool", "cw": "C&W L2"}


@dataclass(frozen=True)
class BoundaryConfig:
    """``model``: registry key (or an in-memory ``nn.Module``); ``card``: the model card's
    fields for a ``file:`` or in-memory model without one. ``n_images`` of ``dataset`` /
    ``split`` (a random subset drawn with ``seed``), fitted to the model under ``fit``
    (:mod:`advstudio.core.data.fields`).
    ``methods``: any of ``fgsm``, ``deepfool``, ``cw``. ``cw_steps`` Adam steps times
    ``cw_search_steps`` rounds of the search on c. ``deepfool_classes``: the candidate classes
    per image (capped at the model's class count). ``dry_run``: 4 images, 5 C&W steps, 1 round."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    n_images: int = 100
    methods: tuple[str, ...] = MINIMAL_METHODS
    cw_steps: int = 100
    cw_search_steps: int = 5
    deepfool_classes: int = 10
    batch_size: int = 50
    seed: int = 0
    device: str = "auto"
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    dry_run: bool = False

    def __post_init__(self) -> None:
        methods = v.choices("methods", self.methods, MINIMAL_METHODS)
        check_model_fields(self)
        v.whole("n_images", self.n_images, 1)
        v.whole("cw_steps", self.cw_steps, 1)
        v.whole("cw_search_steps", self.cw_search_steps, 1)
        v.whole("deepfool_classes", self.deepfool_classes, 2)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)
        check_fields(self)
        object.__setattr__(self, "methods", methods)


@dataclass
class MethodDistances:
    """One method, per image (lists of length ``n_images``): ``l2`` / ``linf`` of the smallest
    flipping perturbation it found (NaN where it failed or the image was already wrong),
    ``success`` (it changed a right answer). ``x_adv``: its result on the first image."""

    method: str
    l2: list[float] = field(default_factory=list)
    linf: list[float] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)
    x_adv: torch.Tensor | None = None

    def median(self, norm: str = "l2") -> float:
        """Median over the images it flipped (NaN when none)."""
        values = [value for value in getattr(self, norm) if not math.isnan(value)]
        return statistics.median(values) if values else math.nan


@dataclass
class BoundaryResult:
    """Per image: ``labels``, ``correct`` (the model right on the clean image: only those have
    a boundary to cross) and, per method, :class:`MethodDistances`. ``x``: the first image."""

    n_images: int = 0
    labels: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    methods: dict[str, MethodDistances] = field(default_factory=dict)
    x: torch.Tensor | None = None

    @property
    def clean_accuracy(self) -> float:
        return sum(self.correct) / self.n_images if self.n_images else math.nan

    def success_rate(self, method: str) -> float:
        """Share of the correctly classified images the method flipped."""
        right = sum(self.correct)
        flipped = sum(s and c for s, c in zip(self.methods[method].success, self.correct))
        return flipped / right if right else math.nan


def boundary_distances(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    methods: tuple[str, ...] = MINIMAL_METHODS,
    cw_steps: int = 100,
    cw_search_steps: int = 5,
    deepfool_classes: int = 10,
    batch_size: int = 50,
) -> Job[BoundaryResult]:
    """The smallest flipping perturbation of each image of ``x`` (N, C, H, W) in [0, 1] with
    labels ``y``, by each method, batch by batch on ``x``'s device (one Progress per method and
    batch, Metrics with the running medians). Images the model gets wrong have NaN norms."""
    xb, _ = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    with eval_mode(model), torch.no_grad():
        classes = int(model(xb[:1]).shape[1])
    options = {
        "deepfool": {"num_classes": min(deepfool_classes, classes)},
        "cw": {"steps": cw_steps, "search_steps": cw_search_steps},
    }
    result = BoundaryResult(n_images=len(xb), labels=labels.tolist(), x=xb[0].cpu())
    batches = list(zip(xb.split(batch_size), labels.split(batch_size)))
    total, done = len(methods) * len(batches), 0
    for method in methods:
        out = result.methods[method] = MethodDistances(method)
        for b, (xs, ys) in enumerate(batches):
            yield Progress(done, total, f"{METHOD_NAMES[method]}: batch {b + 1}/{len(batches)}")
            res = minimal_norms(model, xs, ys, methods=(method,), options=options)[method]
            if method == methods[0]:
                result.correct.extend(res.correct.tolist())
            keep = res.success & res.correct
            nan = torch.tensor(math.nan)
            out.l2.extend(torch.where(keep, res.l2, nan).tolist())
            out.linf.extend(torch.where(keep, res.linf, nan).tolist())
            out.success.extend(keep.tolist())
            if b == 0:
                out.x_adv = res.x_adv[0]
            done += 1
        yield Metrics(
            done,
            {
                f"{method}_median_l2": out.median("l2"),
                f"{method}_median_linf": out.median("linf"),
                f"{method}_success": result.success_rate(method),
            },
        )
    yield Progress(total, total, "done")
    return result


def run_boundary(config: BoundaryConfig) -> Job[BoundaryResult]:
    """:func:`boundary_distances` of a registry model on ``config``'s images.

    >>> drive(run_boundary(BoundaryConfig(n_images=20))).result.methods["deepfool"].median()
    """
    from advstudio.core.data.fields import job_images
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    model = load_model(config.model, device, card=config.card)
    n = min(DRY_RUN_IMAGES, config.n_images) if config.dry_run else config.n_images
    from advstudio.core.models.download import fetch_data

    yield from fetch_data(config.dataset)  # a torchvision set: once, with progress
    images = job_images(config.dataset, config.split, n, config.seed, model, config.fit)
    steps, rounds = (5, 1) if config.dry_run else (config.cw_steps, config.cw_search_steps)
    yield Log(
        f"distance to the boundary of {model.name} on {len(images.x)} images: "
        + ", ".join(METHOD_NAMES[m] for m in config.methods)
        + (f" (C&W {steps} steps × {rounds} rounds)" if "cw" in config.methods else "")
    )
    for line in images.lines:
        yield Log(line)
    if not len(images.x):
        raise ConfigError("the data set holds no images")
    return (
        yield from boundary_distances(
            model,
            images.x.to(device),
            images.y.to(device),
            methods=config.methods,
            cw_steps=steps,
            cw_search_steps=rounds,
            deepfool_classes=config.deepfool_classes,
            batch_size=config.batch_size,
        )
    )
