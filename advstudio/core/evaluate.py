"""Evaluate a classifier on a data set (default the bundled test digits): the simplest real
job, and the template for the others (config dataclass + generator yielding events + result)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advstudio.core import validate as v
from advstudio.core.data import batches
from advstudio.core.data.fields import check_fields, job_images
from advstudio.core.devices import pick_device
from advstudio.core.jobs import Job, Log, Metrics, Progress
from advstudio.core.models.card import ModelCard
from advstudio.core.models.fields import check_model_fields


@dataclass(frozen=True)
class EvaluateConfig:
    """``model``: a registry key (``digits-cnn``, ``file:/path.pt``) or an in-memory ``nn.Module``;
    ``card``: its card's fields when it has none (:mod:`advstudio.core.models.fields`).
    ``limit``: the first N images of the set, in its order (0 = all; the digits' test split is
    sorted by class). ``dataset`` / ``split`` / ``fit``: which images and whether to fit them to
    the model (:mod:`advstudio.core.data.fields`). ``device``: ``auto``, ``cpu``, ``cuda``..."""

    model: str = "digits-cnn"
    card: ModelCard | None = None
    batch_size: int = 100
    limit: int = 0
    device: str = "auto"
    dataset: str = "digits"
    split: str = "test"
    fit: str = "none"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_model_fields(self)
        v.whole("batch_size", self.batch_size, 1)
        v.whole("limit", self.limit, 0, hint="0 = all")
        v.device(self.device)
        v.flag("dry_run", self.dry_run)
        check_fields(self)


@dataclass(frozen=True)
class EvaluateResult:
    accuracy: float
    n: int
    confusion: list[list[int]]  # confusion[true][pred]


def evaluate(config: EvaluateConfig) -> Job[EvaluateResult]:
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    model = load_model(config.model, device, card=config.card)
    limit = config.batch_size if config.dry_run else config.limit
    from advstudio.core.models.download import fetch_data

    yield from fetch_data(config.dataset)  # a torchvision set: once, with progress
    images = job_images(config.dataset, config.split, 0, 0, model, config.fit)
    x, y = images.x[: limit or None], images.y[: limit or None]
    n = len(x)
    for line in images.lines:
        yield Log(line)
    confusion = torch.zeros(model.num_classes, model.num_classes, dtype=torch.long)
    correct = 0
    done = 0
    yield Progress(0, n, f"evaluating {model.name}")
    with torch.no_grad():
        for step, (xb, yb) in enumerate(batches(x, y, config.batch_size)):
            pred = model(xb.to(device)).argmax(1).cpu()
            correct += int((pred == yb).sum())
            confusion.index_put_((yb, pred), torch.ones_like(yb), accumulate=True)
            done += len(yb)
            yield Metrics(step, {"accuracy": correct / done})
            yield Progress(done, n, f"evaluating {model.name}")
    return EvaluateResult(correct / n, n, confusion.tolist())
