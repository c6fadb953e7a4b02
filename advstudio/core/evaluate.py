"""Evaluate a classifier on the bundled test digits: the simplest real job, and the template
for the others (config dataclass + generator yielding events + result)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advstudio.core.data import batches, load_digits
from advstudio.core.devices import pick_device
from advstudio.core import validate as v
from advstudio.core.jobs import Job, Metrics, Progress


@dataclass(frozen=True)
class EvaluateConfig:
    """``model``: a registry key (``digits-cnn``, ``file:/path.pt``). ``limit``: first N test
    digits (0 = all 1,000). ``device``: ``auto``, ``cpu``, ``cuda``..."""

    model: str = "digits-cnn"
    batch_size: int = 100
    limit: int = 0
    device: str = "auto"
    dry_run: bool = False

    def __post_init__(self) -> None:
        v.text("model", self.model, empty=False, hint="a registry key, e.g. 'digits-cnn'")
        v.whole("batch_size", self.batch_size, 1)
        v.whole("limit", self.limit, 0, hint="0 = all")
        v.device(self.device)
        v.flag("dry_run", self.dry_run)


@dataclass(frozen=True)
class EvaluateResult:
    accuracy: float
    n: int
    confusion: list[list[int]]  # confusion[true][pred]


def evaluate(config: EvaluateConfig) -> Job[EvaluateResult]:
    from advstudio.core.models.registry import load_model

    device = pick_device(config.device)
    model = load_model(config.model, device)
    x, y = load_digits("test")
    n = config.batch_size if config.dry_run else (config.limit or len(x))
    x, y = x[:n], y[:n]
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
