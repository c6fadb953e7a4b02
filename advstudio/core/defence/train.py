"""Training a digit classifier, plainly or adversarially: the training step and the job.

Recipes (``TrainConfig.recipe``), all L-inf in [0, 1] pixel units:

- ``"standard"``: cross-entropy on clean images.
- ``"fgsm"``: Goodfellow et al. 2015 (arXiv:1412.6572), the mix
  ``loss = alpha_mix * CE(f(x), y) + (1 - alpha_mix) * CE(f(x_fgsm), y)`` with
  ``x_fgsm = clip(x + eps * sign(grad_x CE(f(x), y)))`` (``alpha_mix`` 0.5 in the paper).
- ``"fgsm-rs"``: Wong et al. 2020 (arXiv:2001.03994), "fast is better than free": FGSM from a
  uniformly random start in the eps-ball with step ``1.25 * eps``, projected back; trained on
  the adversarial images only.
- ``"pgd"``: Madry et al. 2018 (arXiv:1706.06083): PGD-``pgd_steps`` with step ``eps / 4`` from
  a random start; trained on the adversarial images only.

- ``"noise"``: Cohen et al. 2019 (arXiv:1902.02918): cross-entropy on ``x + sigma * N(0, 1)``
  (unclipped, as the smoothed classifier sees it), the base classifier of randomised smoothing;
  certify it at the same ``sigma`` (``certify.smoothing``).
- ``"ibp"``: Gowal et al. 2018 (arXiv:1810.12715): ``certify.ibp.ibp_loss`` at the
  ``(eps_t, kappa_t)`` of ``certify.ibp.ibp_schedule`` for the trainer's step count (so a
  resumed run continues the ramp where it stopped); both are logged per step.
- ``"trades"``: Zhang et al. 2019 (arXiv:1901.08573): ``certify.trades.trades_loss`` with
  ``trades_beta``, its KL inner maximisation PGD-``pgd_steps`` of step ``eps / 4`` (the
  ``"pgd"`` recipe's cost per step).

The three call the certify functions themselves (no copy of their maths here). They train in a
single process: their losses run several passes through ``model`` itself, which
``DistributedDataParallel`` would not synchronise.

``alpha_mix`` is used by ``"fgsm"`` only. Adversarial examples are made against the *current*
model in eval mode (dropout off: the attack sees the function being learnt, not a random
sub-network), then the model is put back in train mode explicitly for the update. Clean and
adversarial images go through the network as one batch.

Held-out evaluation (every ``eval_every`` epochs and after the last) runs on a seeded random
subset of the bundled test digits at the training ``eps`` (``robustness.robust_accuracy``):
clean, FGSM, and PGD-``eval_pgd_steps`` with step ``eps / 10`` from a random start. FGSM
accuracy rising while PGD accuracy collapses is *catastrophic overfitting* (Wong et al.): the
model has learnt to defeat FGSM's one step only. The job logs a warning;
``robustness.catastrophic_overfitting`` checks a history afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from advstudio.core.attacks import eval_mode, fgsm, pgd
from advstudio.core.certify.ibp import ibp_loss, ibp_schedule
from advstudio.core.certify.smoothing import gaussian_noise
from advstudio.core.certify.trades import trades_loss
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.data.spec import describe_shape
from advstudio.core.defence.common import (
    IMAGE_SHAPE,
    Data,
    PrivateRng,
    TrainingSets,
    apply_schedule,
    check_data,
    count_parameters,
    cpu_state,
    dry_run_geometry,
    fake_digits,
    heldout_digits,
    load_checkpoint,
    make_optimizer,
    save_checkpoint,
    save_model,
    training_sets,
)
from advstudio.core.defence.config import TrainConfig
from advstudio.core.defence.robustness import iter_robust_accuracy, overfitting_warning
from advstudio.core.devices import describe, pick_device
from advstudio.core.distributed import (
    Shard,
    batch_mean,
    check_batch,
    data_parallel,
    is_main,
    shard,
    sharded,
    world,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Event, Log, Metrics, Progress, relay
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.names import DIGIT_ARCHITECTURES
from advstudio.core.models.registry import builtin_meta
from advstudio.core.training import CheckpointFile, Divergence, Plan, fit, keeping_logs

RECIPE_NAMES = {
    "standard": "standard training",
    "fgsm": "FGSM adversarial training (mix)",
    "fgsm-rs": "fast FGSM with random start",
    "pgd": "PGD adversarial training",
    "noise": "Gaussian noise augmentation",
    "ibp": "IBP training",
    "trades": "TRADES training",
}
LOSS_RECIPES = ("noise", "ibp", "trades")
"""Recipes whose loss is a certify function's (:meth:`AdversarialTrainer.recipe_loss`)."""
NOISE_SEED_OFFSET = 4
"""The noise generator (Gaussian augmentation, TRADES' start) is seeded ``seed + 4``."""
DRY_RUN_IMAGES = 8
CHECKPOINT_KIND = "classifier-training"


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns.

    ``history``: one dict per epoch (``epoch``, ``step``, ``train_loss``, ``train_acc``,
    ``seconds``, plus ``clean_acc``, ``fgsm_acc``, ``pgd_acc`` when evaluated); ``metrics``: the
    last evaluation and training loss; ``state_dict``: the *network's* weights on the CPU
    (:meth:`classifier` wraps them); ``parameters``: their count; ``input_shape`` and
    ``class_names``: what the network takes and answers (the data set's).
    """

    config: TrainConfig
    history: list[dict[str, float]]
    metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]
    parameters: int
    save_path: str = ""
    checkpoint_path: str = ""
    logs: list[str] = field(default_factory=list)
    input_shape: tuple[int, int, int] = IMAGE_SHAPE
    class_names: list[str] = field(default_factory=lambda: list(DIGIT_CLASSES))

    def classifier(self, device: str | torch.device = "cpu") -> Classifier:
        """The trained model as a :class:`Classifier` on [0, 1] images, in eval mode."""
        return trained_classifier(
            self.config.arch, self.state_dict, device, self.input_shape, self.class_names
        )


def build_classifier(
    arch: str,
    input_shape: tuple[int, int, int] = IMAGE_SHAPE,
    class_names: list[str] | None = None,
) -> Classifier:
    """A fresh ``arch`` net in the :class:`Classifier` wrapper: a digit network with the
    digits' mean/std; any other built by ``models.builders.build`` for ``input_shape`` with
    ``len(class_names)`` outputs (default: the ten digits), taking [0, 1] pixels as they are."""
    if arch in ARCHITECTURES:
        meta = builtin_meta().get(arch, {"mean": [0.1307], "std": [0.3081]})
        names = class_names if class_names and len(class_names) == 10 else DIGIT_CLASSES
        return Classifier(
            ARCHITECTURES[arch](),
            (1, 28, 28),
            names,
            meta["mean"],
            meta["std"],
            name=f"{arch} ({arch} trained here)",
        )
    from advstudio.core.models.builders import build

    names = list(class_names or DIGIT_CLASSES)
    shape = tuple(int(s) for s in input_shape)
    return Classifier(
        build(arch, len(names), shape), shape, names, name=f"{arch} ({arch} trained here)"
    )


def trained_classifier(
    arch: str,
    state_dict: dict[str, torch.Tensor],
    device: str | torch.device = "cpu",
    input_shape: tuple[int, int, int] = IMAGE_SHAPE,
    class_names: list[str] | None = None,
) -> Classifier:
    """:func:`build_classifier` with trained weights, on ``device``, in eval mode."""
    model = build_classifier(arch, input_shape, class_names)
    model.net.load_state_dict(state_dict)
    return model.to(device).eval()


def step_keys(config: TrainConfig) -> tuple[str, ...]:
    """The per-step metric names: ``loss``, ``batch_acc`` (train-mode accuracy on everything
    the step trained on), ``adv_batch_acc`` (on its adversarial images; adversarial recipes)
    and ``grad_norm``; the ``"ibp"`` recipe adds the step's ``ibp_eps`` and ``ibp_kappa``."""
    if config.recipe == "ibp":
        return ("loss", "batch_acc", "ibp_eps", "ibp_kappa", "grad_norm")
    if config.recipe in ("standard", "noise", "trades"):
        return ("loss", "batch_acc", "grad_norm")
    return ("loss", "batch_acc", "adv_batch_acc", "grad_norm")


# ----------------------------------------------------------------------------- the step


class AdversarialTrainer:
    """Model, optimiser and random streams of one run, with the training step.

    Random draws after initialisation come from ``rng`` (data order, random starts) and
    :class:`PrivateRng` (dropout), both seeded from ``config.seed`` and saved in checkpoints;
    torch's global generator is left alone. ``model`` overrides the network (tests).

    Under ``torchrun`` (see :mod:`advstudio.core.distributed`) each process trains on its rows
    of every batch through ``parallel``, the model in ``DistributedDataParallel``; ``model``
    itself serves the attacks, the evaluation and the state dicts. ``input_shape`` and
    ``class_names``: the data's, for the network built (default: the digits').
    ``total_steps``: the run's length, which a learning-rate schedule spans (set by
    :class:`EpochTraining`).
    """

    def __init__(
        self,
        config: TrainConfig,
        device: str | torch.device = "cpu",
        model: Classifier | None = None,
        input_shape: tuple[int, int, int] = IMAGE_SHAPE,
        class_names: list[str] | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                model = build_classifier(config.arch, input_shape, class_names)
        self.model = model.to(self.device).train()
        self.parallel = data_parallel(self.model, self.device)  # the model itself in one process
        self.optimizer = make_optimizer(self.model.parameters(), config)
        self.total_steps = 0
        self.rng = torch.Generator().manual_seed(config.seed)
        self.dropout_rng = PrivateRng(config.seed + 1, self.device)
        self.noise_rng = torch.Generator(self.device).manual_seed(config.seed + NOISE_SEED_OFFSET)
        self.keys = step_keys(config)
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.divergence = Divergence(config.max_loss)

    @staticmethod
    def _smallest(batch_size: int) -> int:
        """The smallest last batch trained on: 2 (BatchNorm cannot train on one image) unless
        ``batch_size`` is 1, and at least one image per process."""
        return max(2 if batch_size > 1 else 1, world().size)

    def batches(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Iterator[Data]:
        """One epoch of shuffled (global) batches; a last batch of a single image, or of fewer
        images than processes, is dropped."""
        order = torch.randperm(len(x), generator=self.rng)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < self._smallest(batch_size):
                return
            yield x[idx], y[idx]

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        return n // batch_size + int(n % batch_size >= self._smallest(batch_size))

    def adversarial(
        self, x: torch.Tensor, y: torch.Tensor, part: Shard | None = None
    ) -> torch.Tensor | None:
        """The recipe's adversarial images against the current model, or ``None`` (standard).

        Made in eval mode (the attack functions also ensure it); every submodule's flag is
        restored afterwards, and :meth:`gradients` sets train mode explicitly anyway.
        ``part``: which rows of the global batch ``x`` is, in a data-parallel run."""
        c = self.config
        if c.recipe == "standard" or c.recipe in LOSS_RECIPES:
            return None
        with eval_mode(self.model):
            if c.recipe == "fgsm":
                return fgsm(self.model, x, y, c.eps)
            start = self.rng if part is None else self._random_start_rng(x, part)
            if c.recipe == "fgsm-rs":
                return pgd(
                    self.model,
                    x,
                    y,
                    c.eps,
                    alpha=1.25 * c.eps,
                    steps=1,
                    random_start=True,
                    generator=start,
                )
            return pgd(
                self.model,
                x,
                y,
                c.eps,
                alpha=c.eps / 4,
                steps=c.pgd_steps,
                random_start=True,
                generator=start,
            )

    def _random_start_rng(self, x: torch.Tensor, part: Shard) -> torch.Generator:
        """The generator for this process's rows of the random start the whole batch draws.

        ``pgd`` draws it with ``torch.rand`` on the CPU, which fills a tensor element by element:
        a copy of ``rng`` that skips the earlier processes' rows gives exactly this process's
        rows of the single-process draw, and ``rng`` itself moves past the whole draw, as in a
        single process (so every process's ``rng`` stays in step)."""
        if part.single:
            return self.rng
        per_image = x[0].numel()
        mine = torch.Generator().set_state(self.rng.get_state())
        torch.rand(part.start * per_image, generator=mine, dtype=x.dtype)
        torch.rand(part.total * per_image, generator=self.rng, dtype=x.dtype)
        return mine

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Attack, then forward and backward in train mode; no update. Returns the step's
        scalars in :func:`step_keys` order as one tensor (one transfer reads them all).

        ``(x, y)`` is the global batch: in a data-parallel run this process attacks and trains
        on its rows of it, and the scalars are the whole batch's."""
        c = self.config
        part = shard(len(x))
        x, y = part.take(x), part.take(y)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with self.dropout_rng:
            x_adv = self.adversarial(x, y) if part.single else self.adversarial(x, y, part)
            self.model.train()  # explicit: the training pass runs with dropout / batch stats
            self.optimizer.zero_grad(set_to_none=True)
            if c.recipe in LOSS_RECIPES:
                loss, extra = self.recipe_loss(x, y)
                with eval_mode(self.model), torch.no_grad():
                    hits = self.model(x).argmax(1) == y  # clean, dropout off
                scalars = [loss.detach(), hits.float().mean(), *extra]
            elif x_adv is None:
                with sharded(part):
                    logits = self.parallel(x)
                loss = F.cross_entropy(logits, y)
                hits = logits.detach().argmax(1) == y
                scalars = [loss.detach(), hits.float().mean()]
            else:
                clean_weight = c.alpha_mix if c.recipe == "fgsm" else 0.0
                n = len(x)
                if clean_weight > 0:
                    with sharded(part, parts=2):
                        logits = self.parallel(torch.cat([x, x_adv]))
                    loss = clean_weight * F.cross_entropy(logits[:n], y) + (
                        1 - clean_weight
                    ) * F.cross_entropy(logits[n:], y)
                    hits = logits.detach().argmax(1) == torch.cat([y, y])
                    adv_hits = hits[n:]
                else:
                    with sharded(part):
                        logits = self.parallel(x_adv)
                    loss = F.cross_entropy(logits, y)
                    hits = adv_hits = logits.detach().argmax(1) == y
                scalars = [loss.detach(), hits.float().mean(), adv_hits.float().mean()]
            part.scale(loss).backward()
        grad_norm = torch.nn.utils.get_total_norm(  # DDP averaged the gradients already
            [p.grad for p in self.model.parameters() if p.grad is not None]
        )
        return torch.stack([*batch_mean(torch.stack(scalars), part), grad_norm.to(loss.device)])

    def recipe_loss(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loss of a :data:`LOSS_RECIPES` recipe on a batch already on the device, in train
        mode, and its extra step scalars (IBP's ``eps_t``, ``kappa_t``). The random draws come
        from ``noise_rng`` (seeded, checkpointed)."""
        c = self.config
        if c.recipe == "noise":
            noisy = gaussian_noise(x, c.sigma, self.noise_rng)
            return F.cross_entropy(self.model(noisy), y), []
        if c.recipe == "ibp":
            eps_t, kappa_t = ibp_schedule(
                self.step,
                eps=c.eps,
                kappa_final=c.ibp_kappa,
                warmup_steps=c.ibp_warmup_steps,
                ramp_steps=c.ibp_ramp_steps,
            )
            scalars = [torch.tensor(t, device=x.device) for t in (eps_t, kappa_t)]
            return ibp_loss(self.model, x, y, eps_t, kappa_t), scalars
        return trades_loss(
            self.model,
            x,
            y,
            beta=c.trades_beta,
            eps=c.eps,
            step_size=c.eps / 4,
            steps=c.pgd_steps,
            generator=self.noise_rng,
        ), []

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One update on the batch ``(x, y)`` (pixels in [0, 1], on any device).

        Raises :class:`TrainingDivergedError` *before* updating when the loss is not finite
        or above ``max_loss`` or the gradient is not finite, so the weights stay good."""
        values = dict(zip(self.keys, self.gradients(x, y).tolist()))
        self.divergence.check(values, self.step + 1)
        self.update()
        return values

    def update(self) -> None:
        """The optimiser step at the schedule's learning rate for this step."""
        apply_schedule(self.optimizer, self.config, self.step, self.total_steps)
        self.optimizer.step()
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs, tensors and plain values only."""
        return {
            "arch": self.config.arch,
            "recipe": self.config.recipe,
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_state": self.rng.get_state(),
            "dropout_rng": self.dropout_rng.state_dict(),
            "noise_rng": self.noise_rng.get_state(),
            "history": self.history,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint; the learning rate comes from the current config."""
        self.model.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
        self.rng.set_state(state["rng_state"])
        self.dropout_rng.load_state_dict(state["dropout_rng"])
        if "noise_rng" in state:  # checkpoints from before the noise recipes lack it
            self.noise_rng.set_state(state["noise_rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = [dict(h) for h in state["history"]]


# ----------------------------------------------------------------------------- the job


def training_data(config: TrainConfig, data: Any = None) -> Data:
    """The training set: ``data`` validated, else the 4,000 bundled training digits (dry run:
    8 random-pixel images, or the first 8 of ``data``). ``data`` for a digit network is
    (N, 1, 28, 28) of 10 classes; for any other architecture any (N, C, H, W)."""
    if data is not None:
        digit_net = config.arch in DIGIT_ARCHITECTURES
        x, y = check_data(data) if digit_net else check_data(data, shape=None, num_classes=None)
        return (x[:DRY_RUN_IMAGES], y[:DRY_RUN_IMAGES]) if config.dry_run else (x, y)
    if config.dry_run:
        shape, names = dry_run_geometry(config.arch, config.dataset)
        return fake_digits(DRY_RUN_IMAGES, config.seed, shape, len(names))
    return load_digits("train")


def dataset_split(config: TrainConfig) -> TrainingSets:
    """A non-digit ``config.dataset`` for ``config.arch``: the train split, ``eval_images`` of
    its test split, the shape, class names and log lines
    (:func:`~advstudio.core.defence.common.training_sets`: at the native shape, or grey
    resized to 28×28 for the digit networks, and said so)."""
    return training_sets(config.dataset, config.arch, config.eval_images, config.seed)


def _geometry(
    config: TrainConfig, x: torch.Tensor, y: torch.Tensor, class_names: list[str] | None
) -> tuple[tuple[int, int, int], list[str]]:
    """The network's input shape and class names for training on ``(x, y)``: the digits' for
    a digit network, else ``x``'s shape and ``class_names`` (default: the set's known names,
    else one per label up to the largest); checked against ``config.arch``."""
    from advstudio.core.defence.defaults import check_arch_data

    if config.arch in DIGIT_ARCHITECTURES:
        return IMAGE_SHAPE, list(class_names or DIGIT_CLASSES)
    shape = tuple(int(s) for s in x.shape[1:])
    if class_names is None:
        if config.dry_run:
            class_names = dry_run_geometry(config.arch, config.dataset)[1]
        elif config.dataset == "digits":
            class_names = list(DIGIT_CLASSES)
        else:
            class_names = [str(i) for i in range(max(int(y.max()) + 1, 2))]
    if len(y) and int(y.max()) >= len(class_names):
        raise ConfigError(
            f"data: label {int(y.max())} is out of range for {len(class_names)} classes"
        )
    check_arch_data(config.arch, config.dataset, shape, len(class_names))
    return shape, list(class_names)


Evaluate = Callable[[Classifier], dict[str, float]]


class EpochTraining:
    """An :class:`AdversarialTrainer` over epochs of ``(x, y)``: the
    :class:`~advstudio.core.training.Trainer` that :func:`train_classifier` fits.

    After each epoch its record (``epoch``, ``step``, ``train_loss``, ``train_acc``,
    ``seconds``) gets the evaluation: ``evaluate(model)`` on every epoch and every process when
    given (the poisoning lab's epoch hook: the model is the live one, put back in train mode
    afterwards), else on rank 0 every ``eval_every`` epochs and after the last, clean / FGSM /
    PGD accuracy on ``eval_set`` at the training eps (none when it is empty). A dry run's epoch
    is one step."""

    def __init__(
        self,
        trainer: AdversarialTrainer,
        data: Data,
        batch_size: int,
        epochs: int,
        eval_set: Data,
        eval_pgd_steps: int,
        evaluate: Evaluate | None = None,
    ) -> None:
        self.trainer, self.data, self.batch_size, self.epochs = trainer, data, batch_size, epochs
        self.eval_set, self.eval_pgd_steps, self.evaluate = eval_set, eval_pgd_steps, evaluate
        config = trainer.config
        self.per_epoch = 1 if config.dry_run else trainer.steps_per_epoch(len(data[0]), batch_size)
        self.total = self.per_epoch * epochs
        trainer.total_steps = self.total
        self._batches: Iterator[Data] | None = None
        self._losses: list[float] = []
        self._accs: list[float] = []
        self._started = 0.0

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def position(self) -> int:
        return self.trainer.epoch

    def message(self) -> str:
        t = self.trainer
        return f"epoch {t.epoch + 1} of {self.epochs}, step {t.step} of {self.total}"

    def begin(self) -> Iterator[Event]:
        return iter(())  # nothing before the first step

    def compute(self) -> dict[str, float]:
        if self._batches is None:  # a new epoch: its data order is drawn at its first step
            self._started = time.perf_counter()
            self._batches = self.trainer.batches(*self.data, self.batch_size)
            self._losses, self._accs = [], []
        values = dict(zip(self.trainer.keys, self.trainer.gradients(*next(self._batches)).tolist()))
        self._losses.append(values["loss"])
        self._accs.append(values["batch_acc"])
        return values

    def apply(self) -> None:
        self.trainer.update()

    def after_step(self) -> Generator[Event, None, None]:
        t = self.trainer
        if len(self._losses) < self.per_epoch:
            return
        self._batches = None
        t.epoch += 1
        record = {
            "epoch": float(t.epoch),
            "step": float(t.step),
            "train_loss": sum(self._losses) / len(self._losses),
            "train_acc": sum(self._accs) / len(self._accs),
            "seconds": time.perf_counter() - self._started,
        }
        record.update((yield from self._evaluation()))
        previous = next((h for h in reversed(t.history) if "pgd_acc" in h), None)
        t.history.append(record)
        yield Metrics(t.step, record)
        warning = overfitting_warning(previous, record)
        if warning:
            yield Log(f"Epoch {t.epoch}: {warning}")

    def _evaluation(self) -> Generator[Event, None, dict[str, float]]:
        """This epoch's figures; the robust accuracy's progress as its own phase ("evaluating on
        1,000 held-out digits": its images, not the training's steps, so no "100 %, 0 s left"
        while the last epoch's evaluation runs)."""
        t = self.trainer
        if self.evaluate is not None:
            figures = self.evaluate(t.model)
        elif (
            is_main()
            and len(self.eval_set[0])
            and (t.epoch % t.config.eval_every == 0 or t.epoch == self.epochs)
        ):
            job = iter_robust_accuracy(
                t.model,
                *self.eval_set,
                t.config.eps,
                pgd_steps=self.eval_pgd_steps,
                generator=torch.Generator().manual_seed(t.config.seed + 3),
            )
            n = len(self.eval_set[0])
            bundled = t.config.dataset == "digits" and not t.config.dry_run  # dry: random
            kind = "digits" if bundled else "images"
            phase = f"evaluating on {n:,} held-out {kind}"
            figures = yield from relay(
                job,
                lambda e: (
                    Progress(e.done, e.total, f"epoch {t.epoch}: {e.message}", phase)
                    if isinstance(e, Progress)
                    else e
                ),
            )
        else:
            return {}
        t.model.train()
        return figures

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)


def _eval_set(
    config: TrainConfig,
    given: Data | None,
    shape: tuple[int, int, int] = IMAGE_SHAPE,
    classes: int = 10,
) -> tuple[Data, int]:
    """The held-out set and the PGD steps of its evaluation (dry run: 8 random-pixel images
    of ``shape`` and at most 2 steps; ``eval_images`` 0: none); ``given``: a data set's own
    test split."""
    if config.dry_run:
        return fake_digits(DRY_RUN_IMAGES, config.seed + 2, shape, classes), min(
            2, config.eval_pgd_steps
        )
    if config.eval_images:
        if given is None and tuple(shape) != IMAGE_SHAPE:
            return (torch.empty(0, *shape), torch.empty(0, dtype=torch.long)), 1
        eval_set = given if given is not None else heldout_digits(config.eval_images, config.seed)
        return eval_set, config.eval_pgd_steps
    return (torch.empty(0, *shape), torch.empty(0, dtype=torch.long)), 1


def train_classifier(
    config: TrainConfig,
    data: Any = None,
    *,
    evaluate: Evaluate | None = None,
    class_names: list[str] | None = None,
) -> Generator[Event, None, TrainResult]:
    """Train a classifier of ``config.arch`` on ``config.dataset`` by ``config.recipe`` (a job:
    drive it with ``jobs.drive``).

    ``data``: an optional ``(x, y)`` pair to train on instead of the data set's train split,
    x float (N, C, H, W) in [0, 1] (or uint8; (N, 1, 28, 28) for a digit network), y int64
    classes (N,), with ``class_names`` naming them (default: the data set's, or one per label).
    This is how the poisoning lab trains on a poisoned set. ``evaluate(model)``: the epoch
    hook, figures to record after every epoch instead of the held-out robust accuracy (see
    :class:`EpochTraining`; the poisoning lab measures its victim with it).

    Yields every step ``Metrics(step, {loss, batch_acc, [adv_batch_acc,] grad_norm})`` and
    ``Progress``; after each epoch ``Metrics(step, {epoch, step, train_loss, train_acc,
    seconds[, clean_acc, fgsm_acc, pgd_acc]})``, plus a ``Log`` warning on catastrophic
    overfitting. Returns a :class:`TrainResult`.

    Under ``torchrun`` the processes share every batch (:mod:`advstudio.core.distributed`);
    only rank 0 evaluates and writes the checkpoint and ``save_path``.

    Raises :class:`ConfigError` for bad data, :class:`TrainingDivergedError` when the loss or
    gradient goes bad (the checkpoint on disk is then the last good epoch),
    :class:`~advstudio.core.errors.CheckpointError` when resuming from another architecture's
    checkpoint.
    """
    device = pick_device(config.device)
    if data is None and not config.dry_run and config.dataset.startswith("torchvision:"):
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # once, with progress and Cancel
    sets = (
        dataset_split(config)
        if data is None and not config.dry_run and config.dataset != "digits"
        else None
    )
    x, y = sets.train if sets else training_data(config, data)
    shape, names = (sets.shape, sets.class_names) if sets else _geometry(config, x, y, class_names)
    batch_size = min(config.batch_size, len(x)) if config.dry_run else config.batch_size
    if batch_size > len(x):
        raise ConfigError(
            f"batch_size {batch_size} is larger than the training set "
            f"({len(x)} images); allowed: 1 to {len(x)}"
        )
    check_batch(batch_size)
    eval_set, eval_pgd_steps = _eval_set(config, sets.held if sets else None, shape, len(names))
    save_path = "" if config.dry_run else config.save_path
    main = is_main()
    if config.recipe in LOSS_RECIPES and world().size > 1:
        raise ConfigError(
            f"the {config.recipe!r} recipe trains in one process only "
            f"(its loss runs passes DistributedDataParallel cannot synchronise)"
        )
    trainer = AdversarialTrainer(config, device, input_shape=shape, class_names=names)
    epochs = 1 if config.dry_run else config.epochs
    run = EpochTraining(trainer, (x, y), batch_size, epochs, eval_set, eval_pgd_steps, evaluate)
    source = "given" if data is not None else ("random fake" if config.dry_run else config.dataset)
    header = (
        f"{RECIPE_NAMES[config.recipe]} of {config.arch} "
        f"({count_parameters(trainer.model.net):,} parameters)"
        + (f" at sigma {config.sigma:g}" if config.recipe == "noise" else "")
        + (f" at eps {config.eps:g}" if config.recipe not in ("standard", "noise") else "")
        + f": {len(x)} {source} images ({describe_shape(shape)}, {len(names)} classes), "
        + f"batch {batch_size}"
        + (
            f", {config.optimizer} lr {config.lr:g}"
            + (f" wd {config.weight_decay:g}" if config.weight_decay else "")
            + (f", {config.schedule} schedule" if config.schedule != "constant" else "")
            if (config.optimizer, config.schedule, config.weight_decay) != ("adam", "constant", 0)
            else ""
        )
        + f", {run.total} steps on "
        + describe(device)
        + (" (dry run)" if config.dry_run else "")
    )
    checkpoint = (
        CheckpointFile(
            config.checkpoint_path,
            lambda path, state: save_checkpoint(path, CHECKPOINT_KIND, state),
            lambda path: load_checkpoint(path, CHECKPOINT_KIND, expect={"arch": config.arch}),
            write=main,
        )
        if config.checkpoint_path
        else None
    )

    def resume_note(state: dict[str, Any]) -> str:
        return (
            f" (it was trained with recipe {state['recipe']!r}; continuing with {config.recipe!r})"
            if state["recipe"] != config.recipe
            else ""
        )

    plan = Plan(
        length=epochs,
        total=run.total,
        message=run.message,
        unit="epoch",
        header=header,
        checkpoint=checkpoint,
        checkpoint_every=1,
        resume=config.resume,
        resume_note=resume_note,
        dry_run=config.dry_run,
        divergence=trainer.divergence,
    )
    logs: list[str] = list(sets.lines) if sets else []
    for line in logs:
        yield Log(line)
    saved = yield from relay(fit(run, plan), keeping_logs(logs))
    trainer.model.eval()
    state = cpu_state(trainer.model.net)
    if save_path and main:
        text = save_model(state, save_path, config.arch, trainer.model)
        logs.append(text)
        yield Log(text)
    evaluated = [h for h in trainer.history if "clean_acc" in h]
    metrics = {
        k: v
        for k, v in (evaluated[-1] if evaluated else {}).items()
        if k in ("clean_acc", "fgsm_acc", "pgd_acc")
    }
    if trainer.history:
        metrics["train_loss"] = trainer.history[-1]["train_loss"]
    return TrainResult(
        config=config,
        history=list(trainer.history),
        metrics=metrics,
        state_dict=state,
        parameters=count_parameters(trainer.model.net),
        save_path=save_path,
        checkpoint_path=saved,
        logs=logs,
        input_shape=shape,
        class_names=names,
    )
