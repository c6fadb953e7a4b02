"""A reactive defence: a second, small network that flags adversarial inputs.

After Metzen et al. 2017 ("On detecting adversarial perturbations", arXiv:1702.04267), kept
simple: a binary CNN on the image itself (Metzen et al. attach theirs to the classifier's
feature maps) is trained to tell clean digits from adversarial ones made against a *frozen*
target classifier (eval mode) by FGSM and/or PGD at a given L-inf ``eps`` (pixels in [0, 1]).
:class:`ClassifyOrReject` then answers with the class, or rejects the input when the detector's
probability of "adversarial" reaches a threshold.

What it costs and what it does not do: one more network to run per image (the job measures the
parameters and the latency), and it only knows the attacks it was trained on. An attacker who
knows about the detector can attack both networks at once (Carlini & Wagner 2017,
arXiv:1705.07263); the figures here are for attacks on the classifier alone.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks import eval_mode, fgsm, pgd
from advstudio.core.data import load_digits
from advstudio.core.defence.common import (
    IMAGE_SHAPE,
    atomic_save,
    check_data,
    count_parameters,
    cpu_state,
    fake_digits,
    heldout_digits,
    model_sets,
    subset,
)
from advstudio.core.defence.config import DetectorConfig
from advstudio.core.defence.robustness import model_device
from advstudio.core.devices import describe, pick_device
from advstudio.core.errors import ConfigError, ModelLoadError
from advstudio.core.jobs import Event, Log, Metrics, Progress, relay
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.registry import load_model
from advstudio.core.training import Plan, fit, keeping_logs

ATTACK_BATCH = 250
DRY_RUN_IMAGES = 16


class DetectorNet(nn.Sequential):
    """A small CNN on C×H×W images in [0, 1] returning one logit: "this input is adversarial"
    (conv 16 - pool - conv 32 - pool - fc 64 - fc 1, about 0.1 M parameters on 1×28×28).
    ``features``: the flattened size after the two pools, 32 × (H // 4) × (W // 4)
    (:meth:`for_shape`)."""

    def __init__(self, channels: int = 1, features: int = 32 * 7 * 7) -> None:
        super().__init__(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(features, 64),
            nn.ReLU(),
            nn.Linear(64, 1),
        )

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return super().forward((x01 - 0.5) * 2.0).squeeze(1)

    @classmethod
    def for_shape(cls, shape: tuple[int, int, int]) -> DetectorNet:
        c, h, w = (int(s) for s in shape)
        if min(h, w) < 4:
            raise ConfigError(f"the detector needs images of at least 4×4, not {h}×{w}")
        return cls(c, 32 * (h // 4) * (w // 4))

    @classmethod
    def for_state(cls, state: dict[str, torch.Tensor]) -> DetectorNet:
        """The network a saved ``state`` fits (its channels and flattened size)."""
        return cls(int(state["0.weight"].shape[1]), int(state["7.weight"].shape[1]))


class ClassifyOrReject:
    """The classifier guarded by the detector.

    ``predict(x)`` returns ``(classes, rejected)``: the classifier's classes (int64, (N,)) and a
    bool mask (N,) of the inputs whose detector probability is >= ``threshold``. Both networks
    run in eval mode without gradients; their training flags are restored afterwards.
    """

    def __init__(self, classifier: nn.Module, detector: nn.Module, threshold: float = 0.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be a probability in [0, 1], not {threshold!r}")
        self.classifier, self.detector, self.threshold = classifier, detector, threshold

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The detector's probability that each image (pixels in [0, 1]) is adversarial."""
        x = x.unsqueeze(0) if x.dim() == 3 else x
        with eval_mode(self.detector):
            return torch.sigmoid(self.detector(x.to(model_device(self.detector))))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(0) if x.dim() == 3 else x
        with eval_mode(self.classifier):
            classes = self.classifier(x.to(model_device(self.classifier))).argmax(1)
        return classes, (self.scores(x) >= self.threshold).to(classes.device)


def load_detector(path: str, device: str | torch.device = "cpu") -> DetectorNet:
    """A detector saved by :func:`train_detector` (``save_path``), in eval mode."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = DetectorNet.for_state(state)
        net.load_state_dict(state)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} is not a detector saved by advstudio: {str(exc).splitlines()[0]}"
        ) from exc
    return net.to(device).eval()


@dataclass
class DetectorResult:
    """What :func:`train_detector` returns.

    ``metrics`` (held-out, at ``config.threshold``): ``detection_rate`` (share of adversarial
    test inputs flagged, all attacks), ``false_alarm_rate`` (share of clean ones flagged),
    ``auc`` (threshold-free), ``detection_rate_fooling`` (among adversarial inputs that fool the
    target), and per attack ``detection_rate_<attack>`` and ``target_acc_<attack>``.
    ``cost``: ``params_classifier``, ``params_detector``, ``params_total`` and per-image
    latency in ms of classify-only vs classify+detect, single images (``latency_*_ms``) and
    batches of 250 (``batch_latency_*_ms``).
    """

    config: DetectorConfig
    metrics: dict[str, float]
    cost: dict[str, float]
    history: list[dict[str, float]]
    detector_state: dict[str, torch.Tensor]
    save_path: str = ""
    logs: list[str] = field(default_factory=list)
    input_shape: tuple[int, int, int] = IMAGE_SHAPE

    def detector(self, device: str | torch.device = "cpu") -> DetectorNet:
        net = DetectorNet.for_shape(self.input_shape)
        net.load_state_dict(self.detector_state)
        return net.to(device).eval()

    def classify_or_reject(
        self, classifier: nn.Module, threshold: float | None = None
    ) -> ClassifyOrReject:
        det = self.detector(model_device(classifier))
        return ClassifyOrReject(
            classifier, det, self.config.threshold if threshold is None else threshold
        )


def make_adversarial(
    target: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    eps: float,
    pgd_steps: int,
    generator: torch.Generator,
) -> Generator[Progress, None, torch.Tensor]:
    """Adversarial twins of ``(x, y)`` (CPU) against ``target`` in batches; yields progress."""
    device = model_device(target)
    out = []
    for start in range(0, len(x), ATTACK_BATCH):
        xb = x[start : start + ATTACK_BATCH].to(device)
        yb = y[start : start + ATTACK_BATCH].to(device)
        if attack == "fgsm":
            adv = fgsm(target, xb, yb, eps)
        else:
            adv = pgd(
                target,
                xb,
                yb,
                eps,
                alpha=eps / 4,
                steps=pgd_steps,
                random_start=True,
                generator=generator,
            )
        out.append(adv.cpu())
        done = min(start + ATTACK_BATCH, len(x))
        yield Progress(done, len(x), f"{attack.upper()} examples: {done} of {len(x)}")
    return torch.cat(out)


def roc_auc(scores_neg: torch.Tensor, scores_pos: torch.Tensor) -> float:
    """Area under the ROC curve: P(a random positive scores above a random negative), ties
    counting half (the Mann-Whitney statistic)."""
    neg = scores_neg.double().sort().values
    pos = scores_pos.double()
    below = torch.searchsorted(neg, pos, right=False).double()
    not_above = torch.searchsorted(neg, pos, right=True).double()
    return float((below + 0.5 * (not_above - below)).sum() / (len(neg) * len(pos)))


@torch.no_grad()
def _scores(detector: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([torch.sigmoid(detector(xb.to(device))).cpu() for xb in x.split(ATTACK_BATCH)])


def _latency(fns: dict[str, Any], images: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function on single images, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn(images[:1])
    for i in range(repeats):
        image = images[i % len(images) : i % len(images) + 1]
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(image)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


class DetectorTraining:
    """:class:`DetectorNet` trained on clean (label 0) vs adversarial (label 1) twins with BCE:
    the :class:`~advstudio.core.training.Trainer` that :func:`train_detector` fits, over epochs.

    ``train``: the clean images and their adversarial twins, (N, 1, 28, 28) in [0, 1], one
    batch holding ``batch_size`` of each; ``test``: the clean held-out images and their twins
    per attack. After each epoch its record (``epoch``, ``train_loss``, ``detection_rate``,
    ``false_alarm_rate``) is measured on ``test`` at ``config.threshold``; ``rates`` and
    ``adv_scores`` keep the last measurement. Nothing is checkpointed."""

    def __init__(
        self,
        config: DetectorConfig,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, dict[str, torch.Tensor]],
        rng: torch.Generator,
        device: torch.device,
    ) -> None:
        self.config, self.train, self.test, self.rng, self.device = (
            config,
            train,
            test,
            rng,
            device,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.detector = DetectorNet.for_shape(train[0].shape[1:]).to(device)
        self.optimizer = torch.optim.Adam(self.detector.parameters(), lr=config.lr)
        n = len(train[0])
        self.batch_size = min(config.batch_size, n)
        self.epochs = 1 if config.dry_run else config.epochs
        self.per_epoch = 1 if config.dry_run else math.ceil(n / self.batch_size)
        self.total = self.epochs * self.per_epoch
        self.step, self.epoch = 0, 0
        self.history: list[dict[str, float]] = []
        self.rates: dict[str, float] = {}
        self.adv_scores: dict[str, torch.Tensor] = {}
        self._order: torch.Tensor | None = None
        self._losses: list[float] = []

    @property
    def position(self) -> int:
        return self.epoch

    def message(self) -> str:
        return f"detector epoch {self.epoch + 1} of {self.epochs}"

    def begin(self) -> Iterator[Event]:
        return iter(())  # nothing before the first step

    def compute(self) -> dict[str, float]:
        if self._order is None:  # a new epoch
            self.detector.train()
            self._losses = []
            self._order = torch.randperm(len(self.train[0]), generator=self.rng)
        start = len(self._losses) * self.batch_size
        idx = self._order[start : start + self.batch_size]
        xb = torch.cat([self.train[0][idx], self.train[1][idx]]).to(self.device)
        target = torch.cat([torch.zeros(len(idx)), torch.ones(len(idx))]).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.detector(xb)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        acc = ((logits.detach() > 0).float() == target).float().mean()
        values = dict(zip(("loss", "batch_acc"), torch.stack([loss.detach(), acc]).tolist()))
        self._losses.append(values["loss"])
        return values

    def apply(self) -> None:
        self.optimizer.step()
        self.step += 1

    def after_step(self) -> Iterator[Event]:
        if len(self._losses) < self.per_epoch:
            return
        self._order = None
        self.epoch += 1
        self.rates, self.adv_scores = self._held_out()
        record = {
            "epoch": float(self.epoch),
            "train_loss": sum(self._losses) / len(self._losses),
            "detection_rate": self.rates["detection_rate"],
            "false_alarm_rate": self.rates["false_alarm_rate"],
        }
        self.history.append(record)
        yield Metrics(self.step, record)

    def _held_out(self) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        threshold, (x_te, adv_te) = self.config.threshold, self.test
        with eval_mode(self.detector):
            clean = _scores(self.detector, x_te, self.device)
            adv = {a: _scores(self.detector, v, self.device) for a, v in adv_te.items()}
        self.detector.train()
        all_adv = torch.cat(list(adv.values()))
        return {
            "detection_rate": float((all_adv >= threshold).double().mean()),
            "false_alarm_rate": float((clean >= threshold).double().mean()),
            "auc": roc_auc(clean, all_adv),
            **{
                f"detection_rate_{a}": float((s >= threshold).double().mean())
                for a, s in adv.items()
            },
        }, adv

    def state_dict(self) -> dict[str, Any]:
        return {"detector": self.detector.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state["detector"])
        self.optimizer.load_state_dict(state["optimizer"])


def train_detector(
    config: DetectorConfig, data: Any = None
) -> Generator[Event, None, DetectorResult]:
    """Train a detector of adversarial inputs for ``config.target`` (a job).

    Makes adversarial twins of the training digits against the frozen target (eval mode),
    trains :class:`DetectorNet` on clean (label 0) vs adversarial (label 1) with BCE, and
    measures on held-out test digits with fresh adversarial examples. Yields ``Progress``,
    per step ``Metrics(step, {loss, batch_acc})``, per epoch ``Metrics(step, {epoch,
    train_loss, detection_rate, false_alarm_rate})``. Returns a :class:`DetectorResult`.

    ``data``: optional ``(x, y)`` training images of the target's input shape instead of
    ``config.dataset``'s train split (any set of the target's channels, resized to its height
    and width: :func:`~advstudio.core.defence.common.model_sets`). The detector takes the
    target's input shape.
    """
    if data is None and not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # a torchvision set: once, with progress and Cancel
    device = pick_device(config.device)
    target = load_model(config.target, device, card=config.target_card).eval()
    if not isinstance(target, Classifier):
        raise ConfigError(
            f"the detector guards a classifier of [0, 1] images; {config.target} is not one"
        )
    shape = tuple(int(s) for s in target.input_shape)
    target.requires_grad_(False)  # frozen: attacks need input gradients only
    data_logs: list[str] = []
    if config.dry_run:
        train = fake_digits(DRY_RUN_IMAGES, config.seed, shape, target.num_classes)
        test = fake_digits(DRY_RUN_IMAGES, config.seed + 2, shape, target.num_classes)
    elif shape == IMAGE_SHAPE and (data is not None or config.dataset == "digits"):
        train = subset(
            check_data(data) if data is not None else load_digits("train"),
            config.train_images,
            config.seed,
        )
        test = heldout_digits(config.test_images, config.seed)
    elif data is not None:  # another shape: a fifth of the given images is held out
        x, y = subset(check_data(data, "data", shape, target.num_classes), 0, config.seed)
        cut = max(1, len(x) // 5)
        test = subset((x[:cut], y[:cut]), config.test_images, config.seed)
        train = subset((x[cut:], y[cut:]), config.train_images, config.seed)
    else:
        sets = model_sets(
            config.dataset,
            shape,
            target.num_classes,
            config.test_images,
            config.seed,
            train_images=config.train_images,
        )
        train, test, data_logs = sets.train, sets.held, sets.lines
    attacks = tuple(config.attacks)
    pgd_steps = 1 if config.dry_run else config.pgd_steps
    rng = torch.Generator().manual_seed(config.seed)
    logs: list[str] = []

    def log(text: str) -> Log:
        logs.append(text)
        return Log(text)

    for line in data_logs:
        yield log(line)
    yield log(
        f"Detector for {target.name}: {len(train[0])} training and {len(test[0])} test "
        f"images, attacks {', '.join(attacks)} at eps {config.eps:g}, on "
        f"{describe(device)}" + (" (dry run)" if config.dry_run else "")
    )
    # training twins: the (shuffled) training digits split evenly among the attacks
    x_tr, y_tr = train
    adv_tr = torch.empty_like(x_tr)
    for k, attack in enumerate(attacks):
        idx = torch.arange(k, len(x_tr), len(attacks))
        adv_tr[idx] = yield from make_adversarial(
            target, x_tr[idx], y_tr[idx], attack, config.eps, pgd_steps, rng
        )
    x_te, y_te = test
    adv_te = {}
    for attack in attacks:
        adv_te[attack] = yield from make_adversarial(
            target, x_te, y_te, attack, config.eps, pgd_steps, rng
        )

    run = DetectorTraining(config, (x_tr, adv_tr), (x_te, adv_te), rng, device)
    detector = run.detector
    plan = Plan(
        length=run.epochs,
        total=run.total,
        message=run.message,
        unit="epoch",
        dry_run=config.dry_run,
    )
    yield from relay(fit(run, plan), keeping_logs(logs))
    rates, adv_scores = run.rates, run.adv_scores
    detector.eval()
    metrics = dict(rates)
    fooled = []
    with torch.no_grad(), eval_mode(target):
        for attack, x_adv in adv_te.items():
            pred = torch.cat(
                [target(xb.to(device)).argmax(1).cpu() for xb in x_adv.split(ATTACK_BATCH)]
            )
            metrics[f"target_acc_{attack}"] = float((pred == y_te).double().mean())
            fooled.append(adv_scores[attack][pred != y_te])
        fooled_scores = torch.cat(fooled)
    metrics["detection_rate_fooling"] = (
        float((fooled_scores >= config.threshold).double().mean())
        if len(fooled_scores)
        else float("nan")
    )
    guarded = ClassifyOrReject(target, detector, config.threshold)

    def classify(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return target(x.to(device)).argmax(1).cpu()

    def classify_and_detect(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        classes, rejected = guarded.predict(x)
        return classes.cpu(), rejected.cpu()

    repeats = 3 if config.dry_run else 50
    single = _latency({"classify": classify, "guarded": classify_and_detect}, x_te, repeats)
    batch = x_te[:ATTACK_BATCH]
    batched = _latency(
        {"classify": lambda _: classify(batch), "guarded": lambda _: classify_and_detect(batch)},
        x_te,
        max(3, repeats // 10),
    )
    cost = {
        "params_classifier": float(count_parameters(target)),
        "params_detector": float(count_parameters(detector)),
        "params_total": float(count_parameters(target) + count_parameters(detector)),
        "latency_classify_ms": single["classify"] * 1e3,
        "latency_guarded_ms": single["guarded"] * 1e3,
        "batch_latency_classify_ms": batched["classify"] * 1e3 / len(batch),
        "batch_latency_guarded_ms": batched["guarded"] * 1e3 / len(batch),
    }
    state = cpu_state(detector)
    save_path = "" if config.dry_run else config.save_path
    if save_path:
        atomic_save(state, save_path)
        yield log(f"Saved the detector to {save_path}.")
    extra_ms = cost["latency_guarded_ms"] - cost["latency_classify_ms"]
    yield log(
        f"Detection rate {metrics['detection_rate']:.1%} at a false-alarm rate of "
        f"{metrics['false_alarm_rate']:.1%} (threshold {config.threshold:g}); the "
        f"detector adds {cost['params_detector']:,.0f} parameters to "
        f"{cost['params_classifier']:,.0f} and {extra_ms:.2f} ms per single image."
    )
    return DetectorResult(
        config=config,
        metrics=metrics,
        cost=cost,
        history=run.history,
        detector_state=state,
        save_path=save_path,
        logs=logs,
        input_shape=shape,
    )
