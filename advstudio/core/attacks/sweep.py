"""The epsilon sweep job: accuracy and attack success against eps, on any data set.

``run_sweep(config)`` is a job (see :mod:`advstudio.core.jobs`). For each attack in
``config.attacks`` and each eps in ``config.epsilons`` it attacks the same ``n_images`` images
of ``config.dataset`` (default the bundled test digits; see
:mod:`advstudio.core.data.fields`) and completes one point of that attack's curve.
Events, in order:

- ``Log`` (model, images, settings; then the data set, skipped files, any fitting);
- ``Progress(done, total)`` after every (attack, eps, batch) (``done`` 0 during the clean pass);
- per completed point ``Metrics(step, {"attack_index", "eps", "accuracy", "success"})``:
  ``Metrics.values`` holds floats only, so the attack is ``config.attacks[int(attack_index)]``;
- right after it ``Preview("sweep", SweepResult)``: a snapshot (a copy) of every curve so far,
  with ``partial=True``. A cancelled run's curves are therefore the last snapshot the UI saw;
  a driver can also pass its own ``result=SweepResult(config)``, which the job fills in place
  and marks ``partial=False`` only when every point is done.

The attacks are the catalogue's entries offered in the sweep
(:func:`~advstudio.core.attacks.catalogue.attacks_for` ``(context="sweep")``), each with its
defaults and the sweep's own settings (pixels in [0, 1]): FGSM; BIM 10 steps of eps/4; PGD-20
with steps of eps/10 from a random start (seeded by ``config.seed``, the attack, the eps and the
batch: :func:`point_seed`); MI-FGSM 10 steps of eps/10, decay 1. FGSM's gradient sign is
computed once per batch, in the same pass as the clean predictions, and reused for every eps
(forwards only); eps 0 reuses the clean predictions.
"""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from advstudio.core import validate as v
from advstudio.core.attacks import catalogue
from advstudio.core.attacks.whitebox import (
    apply_direction,
    check_eps,
    eval_mode,
    gradient_and_logits,
)
from advstudio.core.data import load_digits
from advstudio.core.data.fields import check_fields, job_images
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Log, Metrics, Preview, Progress
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields

DRY_RUN_IMAGES = 8


@dataclass(frozen=True)
class SweepConfig:
    """``model``: registry key, or an in-memory ``nn.Module`` (registered, then replaced by its
    key); ``card``: the model card's fields for a ``file:`` or in-memory model without one
    (:mod:`advstudio.core.models.fields`). ``epsilons``: L-inf radii in [0, 1]. ``n_images``:
    how many images of the data set (a random subset drawn with ``seed`` when fewer; all when
    the set is smaller). ``dataset`` / ``split`` / ``fit``: which images and whether to fit them
    to the model (:mod:`advstudio.core.data.fields`). ``targeted``: aim at class ``(y + 1) %
    classes``. ``dry_run``: one batch of 8 images (smoke test)."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    attacks: tuple[str, ...] = ("fgsm",)
    epsilons: tuple[float, ...] = (0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    n_images: int = 1000
    batch_size: int = 250
    device: str = "auto"
    targeted: bool = False
    seed: int = 0
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    dry_run: bool = False

    def __post_init__(self) -> None:
        attacks = tuple(self.attacks)
        if not attacks:
            raise ConfigError("choose at least one attack")
        known = catalogue.names(context="sweep")
        for name in attacks:
            if name not in known:
                raise ConfigError(f"unknown attack {name!r}; the sweep knows {', '.join(known)}")
        if len(set(attacks)) != len(attacks):
            raise ConfigError(f"each attack once, please: {', '.join(attacks)}")
        epsilons = tuple(check_eps(e) for e in self.epsilons)
        if not epsilons:
            raise ConfigError("choose at least one epsilon")
        check_model_fields(self)
        v.whole("n_images", self.n_images, 1)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("seed", self.seed)
        v.device(self.device)
        v.flag("targeted", self.targeted)
        v.flag("dry_run", self.dry_run)
        check_fields(self)
        object.__setattr__(self, "attacks", attacks)
        object.__setattr__(self, "epsilons", epsilons)


@dataclass
class SweepCurve:
    """One attack's points, in the order of ``config.epsilons``. ``accuracy``: fraction of the
    images still classified right. ``success``: untargeted, the fraction of the images the model
    got right when clean that it gets wrong now; targeted, the fraction now predicted as the
    target. ``predictions[k][i]``: the class image ``i`` was given under the attack at
    ``epsilons[k]`` (images in the job's order)."""

    attack: str
    epsilons: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    predictions: list[list[int]] = field(default_factory=list)


@dataclass
class SweepResult:
    """Every curve so far; ``partial`` until the last point is done (then False).
    ``clean_predictions[i]``: the class image ``i`` was given clean."""

    config: SweepConfig
    n_images: int = 0
    clean_accuracy: float = math.nan
    clean_predictions: list[int] = field(default_factory=list)
    curves: dict[str, SweepCurve] = field(default_factory=dict)
    partial: bool = True

    def snapshot(self) -> SweepResult:
        return copy.deepcopy(self)


def sweep_images(n_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test digits a sweep uses: all 1,000 in order, or ``n_images`` of them drawn with
    ``torch.randperm(1000, generator=torch.Generator().manual_seed(seed))`` (the split is
    sorted by class, so a prefix would be all zeros)."""
    x, y = load_digits("test")
    if n_images > len(x):
        raise ConfigError(
            f"n_images must be at most {len(x)} (the bundled test digits), not {n_images}"
        )
    if n_images < len(x):
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n_images]
        x, y = x[idx], y[idx]
    return x, y


def point_seed(seed: int, attack: int, eps: int, batch: int) -> int:
    """The seed of one batch's attack at one point: from the config's ``seed``, the attack's
    and eps's places in the config and the batch's place among all the job's batches, so a
    batch draws the same random start whichever process of a sharded run attacks it."""
    return int(np.random.SeedSequence([seed, attack, eps, batch]).generate_state(1)[0])


def run_sweep(config: SweepConfig, result: SweepResult | None = None) -> Job[SweepResult]:
    """Accuracy/success against eps for each attack; see the module docstring for events.

    Under ``torchrun`` each process attacks a contiguous block of the batches and every point
    gathers the blocks' predictions (:mod:`advstudio.core.distributed`): the result is a single
    process's, image for image. Progress counts this process's batches.

    >>> out = drive(run_sweep(SweepConfig(n_images=200, epsilons=(0, 0.1, 0.2))))
    >>> out.result.curves["fgsm"].accuracy
    """
    from advstudio.core import distributed
    from advstudio.core.models.registry import load_model

    result = result if result is not None else SweepResult(config)
    result.partial = True
    device = pick_device(config.device)
    model = load_model(config.model, device, card=config.card)
    n = min(DRY_RUN_IMAGES, config.n_images) if config.dry_run else config.n_images
    from advstudio.core.models.download import fetch_data

    yield from fetch_data(config.dataset)  # a torchvision set: once, with progress
    images = job_images(config.dataset, config.split, n, config.seed, model, config.fit)
    x, y = images.x, images.y
    n = len(x)
    size = len(x) if config.dry_run else config.batch_size
    batches = list(zip(x.split(size), y.split(size)))
    part = distributed.shard(len(batches))
    data = [(xb.to(device), yb.to(device)) for xb, yb in batches[part.start : part.stop]]
    yield Log(
        f"sweep on {model.name}: {n} images in {len(batches)} batches, attacks "
        f"{', '.join(config.attacks)}, eps {', '.join(f'{e:g}' for e in config.epsilons)}"
        + (", targeted at (y + 1) mod classes" if config.targeted else "")
    )
    if not part.single:
        yield Log(
            f"this process (rank {distributed.world().rank} of {part.processes}) attacks "
            f"batches {part.start + 1}-{part.stop} of {len(batches)}"
        )
    for line in images.lines:
        yield Log(line)

    def predict(xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(xb).argmax(1)

    def gathered(preds: list[torch.Tensor]) -> torch.Tensor:
        """Every process's predictions of its batches, in image order: all ``n``."""
        mine = torch.cat(preds).cpu() if preds else torch.zeros(0, dtype=torch.long)
        return torch.cat(distributed.gather_objects(mine))

    total = len(config.attacks) * len(config.epsilons) * len(data)
    model.eval()
    goals = [(yb + 1) % model.num_classes if config.targeted else yb for _, yb in data]
    # clean predictions; with FGSM in the sweep they come with its one gradient per batch
    clean_pred, directions = [], []
    for b, (xb, _) in enumerate(data):
        yield Progress(0, total, f"clean predictions: batch {b + 1}/{len(data)}")
        if "fgsm" in config.attacks:
            with eval_mode(model):
                grad, logits = gradient_and_logits(model, xb, goals[b], config.targeted)
            directions.append(grad.sign())
            clean_pred.append(logits.argmax(1))
        else:
            clean_pred.append(predict(xb))
    labels = y.cpu()
    goal = (labels + 1) % model.num_classes if config.targeted else labels
    clean_all = gathered(clean_pred)
    clean_right = clean_all == labels
    n_right = int(clean_right.sum())
    result.n_images = n
    result.clean_accuracy = n_right / n
    result.clean_predictions = clean_all.tolist()
    done = step = 0
    for a, name in enumerate(config.attacks):
        entry = catalogue.get(name)
        settings = entry.resolve(context="sweep")
        for e, eps in enumerate(config.epsilons):
            params = {**settings, "eps": eps}
            preds = []
            for b, (xb, yb) in enumerate(data):
                if eps == 0:
                    pred = clean_pred[b]
                elif name == "fgsm":
                    pred = predict(apply_direction(xb, directions[b], eps))
                else:
                    seed = point_seed(config.seed, a, e, part.start + b)
                    pred = predict(
                        entry.run(
                            model,
                            xb,
                            yb,
                            params,
                            target=goals[b] if config.targeted else None,
                            generator=torch.Generator().manual_seed(seed),
                            seed=seed,
                        ).x_adv
                    )
                preds.append(pred)
                done += 1
                yield Progress(done, total, f"{name} at eps {eps:g}: batch {b + 1}/{len(data)}")
            pred_all = gathered(preds)
            correct = int((pred_all == labels).sum())
            if config.targeted:
                success = int((pred_all == goal).sum()) / n
            else:
                hits = int(((pred_all != labels) & clean_right).sum())
                success = hits / n_right if n_right else math.nan
            # the curve appears with its first point, so a driver that sees a curve sees a point
            curve = result.curves.setdefault(name, SweepCurve(name))
            curve.epsilons.append(eps)
            curve.accuracy.append(correct / n)
            curve.success.append(success)
            curve.predictions.append(pred_all.tolist())
            yield Metrics(
                step,
                {"attack_index": float(a), "eps": eps, "accuracy": correct / n, "success": success},
            )
            yield Preview("sweep", result.snapshot())
            step += 1
    result.partial = False
    return result


def sweep_to_csv(result: SweepResult, path: str | Path) -> Path:
    """One row per point: attack, eps, accuracy, success, n_images, partial."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["attack", "eps", "accuracy", "success", "n_images", "partial"])
        for curve in result.curves.values():
            for e, acc, succ in zip(curve.epsilons, curve.accuracy, curve.success):
                writer.writerow(
                    [
                        curve.attack,
                        f"{e:g}",
                        f"{acc:.6g}",
                        f"{succ:.6g}",
                        result.n_images,
                        result.partial,
                    ]
                )
    return path
