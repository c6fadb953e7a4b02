"""An input-transform defence over a data set: the accuracy of the defended model on clean
images, under PGD through the defence (gradient masking), under PGD with BPDA and, for a
randomised defence, under EoT-PGD (Athalye et al. 2018).

The Attack tab's "Input defences" panel runs :func:`~advstudio.core.attacks.lab.compare_defence`
on the current image; this is the same comparison on ``n_images`` of any data set at its native
shape, any C×H×W (JPEG: grey or RGB) and class count:

- :func:`defence_accuracy`: an in-memory classifier and images (N, C, H, W) in [0, 1];
- :func:`run_defence_eval`: the job (``advstudio-run`` kind ``defence-eval``) on a registry model.

Each attack is PGD (``steps`` steps of ``2.5 eps / steps`` from a seeded random start, L-inf
``eps`` in pixels [0, 1]); every result is judged by the deployed (defended) model, with one
seeded draw of a randomised transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from advstudio.core import validate as v
from advstudio.core.attacks.eot import DEFAULT_SAMPLES, eot_pgd, seeded
from advstudio.core.attacks.lab import DEFENCES, make_transform
from advstudio.core.attacks.transforms import RANDOM_TRANSFORMS, defended
from advstudio.core.attacks.whitebox import as_labels, check_eps, check_images, eval_mode, pgd
from advstudio.core.data.fields import check_fields
from advstudio.core.devices import pick_device
from advstudio.core.errors import AttackError, ConfigError
from advstudio.core.jobs import Job, Log, Metrics, Progress
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

DRY_RUN_IMAGES = 4
ATTACKS = ("plain", "bpda", "eot")
ATTACK_NAMES = {"plain": "PGD through the defence", "bpda": "PGD with BPDA", "eot": "EoT-PGD"}


@dataclass(frozen=True)
class DefenceEvalConfig:
    """``model``: registry key (or an in-memory ``nn.Module``); ``card``: the model card's
    fields for a ``file:`` or in-memory model without one. ``defence``: a key of
    :data:`~advstudio.core.attacks.lab.DEFENCES` with its whole-number ``parameter`` (JPEG
    quality, bits, median window, shrink in pixels, noise sigma in %). ``eps``: L-inf radius in
    [0, 1]; ``steps``: PGD steps. ``n_images`` of ``dataset`` / ``split`` (seeded subset),
    fitted under ``fit``. ``dry_run``: 4 images, 2 steps."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    defence: str = "bit_depth"
    parameter: int = 2
    eps: float = 0.1
    steps: int = 20
    n_images: int = 100
    batch_size: int = 50
    seed: int = 0
    device: str = "auto"
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_model_fields(self)
        v.choice("defence", self.defence, DEFENCES)
        v.whole("parameter", self.parameter, 0)
        make_transform(self.defence, self.parameter)  # checks the parameter's range
        v.number("eps", self.eps, 0, 1, hint="pixels [0, 1]")
        v.whole("steps", self.steps, 1)
        v.whole("n_images", self.n_images, 1)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.flag("dry_run", self.dry_run)
        check_fields(self)


@dataclass
class DefenceEval:
    """Per image (lists of length ``n_images``): ``undefended`` / ``clean``: the model without /
    behind the defence right on the clean image; ``right[attack]``: the defended model still
    right after that attack (absent: the attack does not apply; ``errors[attack]``: why it
    could not run, e.g. no gradient through JPEG). ``x`` and ``x_adv[attack]``: the first
    image and each attack's result on it."""

    defence: str
    parameter: int
    eps: float
    steps: int
    n_images: int = 0
    undefended: list[bool] = field(default_factory=list)
    clean: list[bool] = field(default_factory=list)
    right: dict[str, list[bool]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    x: torch.Tensor | None = None
    x_adv: dict[str, torch.Tensor] = field(default_factory=dict)

    def accuracy(self, which: str) -> float:
        """Accuracy of ``"undefended"``, ``"clean"`` or an attack (NaN if it did not run)."""
        values = getattr(self, which) if which in ("undefended", "clean") else self.right.get(which)
        if not values:
            return math.nan
        return sum(values) / len(values)


def defence_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    defence: str,
    parameter: int,
    eps: float,
    steps: int = 20,
    batch_size: int = 50,
    seed: int = 0,
) -> Job[DefenceEval]:
    """The model behind ``defence`` on ``x`` (N, C, H, W) in [0, 1] with labels ``y``: clean,
    and under plain PGD, BPDA and (randomised defences) EoT-PGD at ``eps``, batch by batch."""
    eps = check_eps(eps)
    v.whole("steps", steps, 1)
    xb, _ = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    transform = make_transform(defence, parameter)
    device = xb.device
    shielded = model if transform is None else defended(model, transform)
    attacks = ["plain"]
    if transform is not None:
        attacks.append("bpda")
    if isinstance(transform, RANDOM_TRANSFORMS):
        attacks.append("eot")
    targets = {"plain": shielded, "eot": shielded}
    if transform is not None:
        targets["bpda"] = defended(model, transform, bpda=True)
    out = DefenceEval(defence, parameter, eps, steps, n_images=len(xb), x=xb[0].cpu())

    def judge(images: torch.Tensor, ys: torch.Tensor, net: nn.Module) -> list[bool]:
        with eval_mode(net), torch.no_grad(), seeded(seed + 1, device):
            return (net(images).argmax(1) == ys).tolist()

    def attack(name: str, xs: torch.Tensor, ys: torch.Tensor, b: int) -> torch.Tensor:
        alpha = 2.5 * eps / steps
        if name == "eot":
            return eot_pgd(
                targets[name],
                xs,
                ys,
                eps,
                alpha=alpha,
                steps=steps,
                samples=DEFAULT_SAMPLES,
                seed=seed + b,
            )
        generator = torch.Generator(device=device.type).manual_seed(seed + b)
        return pgd(targets[name], xs, ys, eps, alpha=alpha, steps=steps, generator=generator)

    batches = list(zip(xb.split(batch_size), labels.split(batch_size)))
    total = (1 + len(attacks)) * len(batches)
    done = 0
    for b, (xs, ys) in enumerate(batches):
        yield Progress(done, total, f"clean predictions: batch {b + 1}/{len(batches)}")
        out.undefended.extend(judge(xs, ys, model))
        out.clean.extend(judge(xs, ys, shielded))
        done += 1
    for name in attacks:
        for b, (xs, ys) in enumerate(batches):
            yield Progress(done, total, f"{ATTACK_NAMES[name]}: batch {b + 1}/{len(batches)}")
            done += 1
            if name in out.errors:
                continue
            try:
                x_adv = attack(name, xs, ys, b)
            except AttackError as exc:  # no gradient through the transform: masking
                out.errors[name] = str(exc)
                continue
            out.right.setdefault(name, []).extend(judge(x_adv, ys, shielded))
            if b == 0:
                out.x_adv[name] = x_adv[0].detach().cpu()
        if name not in out.errors:
            yield Metrics(done, {f"{name}_accuracy": out.accuracy(name)})
    yield Progress(total, total, "done")
    return out


def run_defence_eval(config: DefenceEvalConfig) -> Job[DefenceEval]:
    """:func:`defence_accuracy` of a registry model on ``config``'s images.

    >>> drive(run_defence_eval(DefenceEvalConfig(eps=0.3))).result.accuracy("bpda")
    """
    from advstudio.core.data.fields import job_images
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    model = load_model(config.model, device, card=config.card)
    n = min(DRY_RUN_IMAGES, config.n_images) if config.dry_run else config.n_images
    from advstudio.core.models.download import fetch_data

    yield from fetch_data(config.dataset)  # a torchvision set: once, with progress
    images = job_images(config.dataset, config.split, n, config.seed, model, config.fit)
    if not len(images.x):
        raise ConfigError("the data set holds no images")
    steps = 2 if config.dry_run else config.steps
    yield Log(
        f"{DEFENCES[config.defence]} ({config.parameter}) in front of {model.name} on "
        f"{len(images.x)} images: PGD at eps {config.eps:g}, {steps} steps"
    )
    for line in images.lines:
        yield Log(line)
    return (
        yield from defence_accuracy(
            model,
            images.x.to(device),
            images.y.to(device),
            defence=config.defence,
            parameter=config.parameter,
            eps=config.eps,
            steps=steps,
            batch_size=config.batch_size,
            seed=config.seed,
        )
    )
