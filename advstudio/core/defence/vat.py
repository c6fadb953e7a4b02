"""Virtual adversarial training (Miyato et al. 2018, arXiv:1704.03976): the loss and a
semi-supervised training job on the digits.

The *local distributional smoothness* loss of an input x is

    LDS(x) = KL( p(y | x) || p(y | x + r_adv) ),   r_adv = argmax_{||r||_2 <= eps} KL(...)

with p(y | x) held fixed (no gradient). r_adv needs no labels, so unlabelled images train the
model too. It is found by power iteration: the KL's gradient at ``r = xi * d`` for a unit
vector ``d`` is about ``xi * H d`` (H: the KL's Hessian at r = 0, where its gradient vanishes),
so ``d <- normalise(grad)`` moves ``d`` towards H's dominant eigenvector, the direction the
prediction is most sensitive to. One iteration is the paper's default.

Units: images are in [0, 1]; ``xi`` and ``eps`` are **L2** lengths over *all* pixels of an
image (eps 2.0 on a 28x28 digit is about 0.07 per pixel on average). The perturbation is not
clipped to [0, 1] (the paper puts no box constraint on r).

Precision: the paper's ``xi = 1e-6`` (the default) moves the logits of a float32 model by
about their rounding error, so the power iteration's direction is partly noise: on 10 test
digits and the built-in CNN, |cosine| with the exact Hessian direction was above 0.97 for 5 of
them at ``xi = 1e-6`` and above 0.99 for 8 at ``xi = 1e-4`` (the other two are so confident that
even float64 cannot tell). The KL itself is computed in float64 (:func:`kl_divergence`).

Mode: p(y|x), the power-iteration passes and the perturbed pass all run in eval mode (dropout
off, BatchNorm on running statistics), so the KL measures the effect of r only. With dropout on,
the KL also measures dropout noise and the term pushes towards constant outputs (the reference
run collapsed to 20.6 %). :func:`train_vat`'s supervised pass runs in train mode.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks import eval_mode
from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.defence.common import (
    IMAGE_SHAPE,
    Data,
    PrivateRng,
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
from advstudio.core.defence.config import VatConfig, check_vat_args
from advstudio.core.defence.defaults import check_arch_data
from advstudio.core.defence.robustness import robust_accuracy
from advstudio.core.defence.train import build_classifier, trained_classifier
from advstudio.core.devices import describe, pick_device
from advstudio.core.distributed import (
    Shard,
    batch_mean,
    check_batch,
    data_parallel,
    is_main,
    shard,
    sharded,
)
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Event, Log, Metrics, relay
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.names import DIGIT_ARCHITECTURES
from advstudio.core.training import CheckpointFile, Divergence, Plan, fit, keeping_logs

CHECKPOINT_KIND = "vat"
DRY_RUN_IMAGES = 40


# ----------------------------------------------------------------------------- the loss


def l2_normalise(d: torch.Tensor) -> torch.Tensor:
    """Each sample of ``d`` scaled to unit L2 norm over all its elements (zero stays zero)."""
    norms = d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1)))
    return d / norms.clamp_min(1e-30)


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(p || q)`` of two batches of logits, in the logits' dtype (float32 at
    least).

    Computed in float64 where the device has it: for a confident prediction (p of the top
    class within 1e-7 of 1) float32 rounds ``q - p``, the gradient that drives the power
    iteration, to zero in the top class and the direction goes wrong (measured on the
    built-in CNN: cosine 0.0 to 0.8 with the exact Hessian direction in float32, 0.99 with this).
    """
    out = torch.promote_types(logits_q.dtype, torch.float32)
    dtype = torch.float32 if logits_q.device.type == "mps" else torch.float64
    log_p = F.log_softmax(logits_p.to(dtype), dim=1)
    log_q = F.log_softmax(logits_q.to(dtype), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).to(out)


def vat_perturbation(
    model: nn.Module,
    x: torch.Tensor,
    *,
    xi: float = 1e-6,
    eps: float = 2.0,
    power_iterations: int = 1,
    logits: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    part: Shard | None = None,
) -> torch.Tensor:
    """``r_adv``: per sample, L2 norm ``eps`` along the power-iterated most sensitive direction.

    ``logits``: the model's logits of ``x`` if already computed (in eval mode); ``generator``
    draws the random start ``d`` (on the CPU, so seeded runs agree across devices); ``part``:
    which rows of a global batch ``x`` is, in a data-parallel run (the start is drawn for the
    whole batch, and these rows kept). Gradients w.r.t. ``d`` come from
    ``torch.autograd.grad``: no parameter's ``.grad`` is touched. Returns a detached tensor
    shaped like ``x``.
    """
    check_vat_args(xi, eps, power_iterations)
    x = x.detach()
    with eval_mode(model):
        if logits is None:
            with torch.no_grad():
                logits = model(x)
        logits = logits.detach()
        if part is None or part.single:
            d = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        else:
            d = part.take(
                torch.randn((part.total, *x.shape[1:]), generator=generator, dtype=x.dtype)
            )
        d = l2_normalise(d.to(x.device))
        for _ in range(power_iterations):
            r = (xi * d).requires_grad_(True)
            with torch.enable_grad():
                kl = kl_divergence(logits, model(x + r)).sum()  # sum: each sample's own grad
                (grad,) = torch.autograd.grad(kl, r)
            norms = grad.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
            # a sample whose KL did not change at all (underflow) keeps its previous direction
            d = torch.where(norms > 0, grad / norms.clamp_min(1e-30), d)
    return (eps * d).detach()


def vat_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    xi: float = 1e-6,
    eps: float = 2.0,
    power_iterations: int = 1,
    logits: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    part: Shard | None = None,
) -> torch.Tensor:
    """The LDS loss ``mean_x KL(p(y|x) || p(y|x + r_adv))`` (a scalar >= 0).

    ``model`` maps images in [0, 1] to logits; ``xi`` (the power iteration's finite-difference
    length) and ``eps`` (the radius of ``r_adv``) are L2 lengths over all pixels of an image.
    ``p(y|x)`` is detached (from ``logits`` if given), so the gradient of the result reaches the
    model's parameters only through the perturbed pass, and never ``x`` or ``r_adv``. Every pass
    runs in eval mode; the model's training flags are restored afterwards. ``part``: see
    :func:`vat_perturbation` (the result is then the mean over this process's rows).

    >>> loss = ce + alpha * vat_loss(model, x_unlabelled)
    """
    x = x.detach()
    with eval_mode(model):
        if logits is None:
            with torch.no_grad():
                logits = model(x)
        r_adv = vat_perturbation(
            model,
            x,
            xi=xi,
            eps=eps,
            power_iterations=power_iterations,
            logits=logits,
            generator=generator,
            part=part,
        )
        return kl_divergence(logits.detach(), model(x + r_adv)).mean()


class PixelNet(nn.Module):
    """A digit :class:`Classifier` without its final clamp to [0, 1]: normalise, then the net.
    VAT's ``x + r`` may leave [0, 1]; through the clamp those pixels would get no gradient."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        return c.net((x01 - c.mean) / c.std)


# ----------------------------------------------------------------------------- the job


@dataclass
class VatResult:
    """What :func:`train_vat` returns: ``history`` of evaluations (``step``, ``test_acc``),
    the final ``test_acc``, the network's weights on the CPU and their count."""

    config: VatConfig
    history: list[dict[str, float]]
    test_acc: float
    state_dict: dict[str, torch.Tensor]
    parameters: int
    labelled: int
    unlabelled: int
    save_path: str = ""
    checkpoint_path: str = ""
    logs: list[str] = field(default_factory=list)
    input_shape: tuple[int, int, int] = IMAGE_SHAPE
    class_names: list[str] = field(default_factory=lambda: list(DIGIT_CLASSES))

    def classifier(self, device: str | torch.device = "cpu") -> Classifier:
        return trained_classifier(
            self.config.arch, self.state_dict, device, self.input_shape, self.class_names
        )


def split_labelled(
    y: torch.Tensor, per_class: int, seed: int, classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded, stratified labelled subset (``per_class`` of each class) and of
    the rest. :class:`ConfigError` naming the numbers when a class has too few images."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(classes):
        idx = (y == c).nonzero().flatten()
        if len(idx) < per_class:
            raise ConfigError(
                f"labels_per_class {per_class} asks for {per_class * classes} labels, but the "
                f"training data ({len(y)} images) has only {len(idx)} of class {c}; allowed: "
                f"1 to {min(int((y == k).sum()) for k in range(classes))}"
            )
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    labelled = torch.cat(chosen)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[labelled] = False
    return labelled, mask.nonzero().flatten()


class _Cycle:
    """Batches of indices in shuffled passes over ``pool`` (the last short batch of a pass is
    skipped), drawn from ``rng``; its position goes into checkpoints."""

    def __init__(self, pool: torch.Tensor, batch: int, rng: torch.Generator) -> None:
        self.pool, self.batch, self.rng = pool, min(batch, len(pool)), rng
        self.order, self.cursor = pool[torch.randperm(len(pool), generator=rng)], 0

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch > len(self.order):
            self.order = self.pool[torch.randperm(len(self.pool), generator=self.rng)]
            self.cursor = 0
        self.cursor += self.batch
        return self.order[self.cursor - self.batch : self.cursor]

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order, self.cursor = state["order"], int(state["cursor"])


class VatTraining:
    """One VAT run's model, optimiser, random streams and batch cycles: the
    :class:`~advstudio.core.training.Trainer` that :func:`train_vat` fits.

    Random draws come from ``rng`` (batch order, the power iteration's start) and a
    :class:`PrivateRng` (dropout), seeded from ``config.seed`` and saved in checkpoints; the
    global generator is left alone. Rank 0 evaluates (test accuracy on ``eval_set``, none when
    it is empty) at step 0, every ``eval_every`` steps and at the end; ``history`` holds the
    evaluations and goes into the checkpoint."""

    def __init__(
        self,
        config: VatConfig,
        data: Data,
        labelled: torch.Tensor,
        unlabelled: torch.Tensor | None,
        eval_set: Data,
        steps: int,
        device: torch.device,
        input_shape: tuple[int, int, int] = IMAGE_SHAPE,
        class_names: list[str] | None = None,
    ) -> None:
        self.config, self.data, self.labelled, self.eval_set = config, data, labelled, eval_set
        self.steps, self.device = steps, device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_classifier(config.arch, input_shape, class_names)
            self.model = model.to(device).train()
        self.parallel = data_parallel(self.model, device)  # the model itself in one process
        self.pixel_model = PixelNet(self.model)
        self.optimizer = make_optimizer(self.model.parameters(), config)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.dropout_rng = PrivateRng(config.seed + 1, device)
        self.lab = _Cycle(labelled, config.labelled_batch, self.rng)
        self.unl = (
            None if unlabelled is None else _Cycle(unlabelled, config.unlabelled_batch, self.rng)
        )
        self.keys = vat_step_keys(config)
        self.main = is_main()
        self.step = 0
        self.history: list[dict[str, float]] = []

    @property
    def position(self) -> int:
        return self.step

    def message(self) -> str:
        return f"step {self.step} of {self.steps}"

    def _evaluation(self) -> Metrics:
        acc = robust_accuracy(self.model, *self.eval_set, 0.0, attacks=("clean",))["clean_acc"]
        self.model.train()
        self.history.append({"step": float(self.step), "test_acc": acc})
        return Metrics(self.step, {"test_acc": acc})

    def begin(self) -> Iterator[Event]:
        if self.main and self.step == 0 and len(self.eval_set[0]):
            yield self._evaluation()

    def compute(self) -> dict[str, float]:
        x, y = self.data
        idx = self.lab.next()
        part_l = shard(len(idx))  # this process's rows (all of them in a single process)
        idx = part_l.take(idx)
        xl, yl = x[idx].to(self.device), y[idx].to(self.device)
        xu, part_u = None, None
        if self.unl is not None:
            idx = self.unl.next()
            part_u = shard(len(idx))
            xu = x[part_u.take(idx)].to(self.device)
        with self.dropout_rng:
            scalars = vat_gradients(
                self.model,
                self.pixel_model,
                self.optimizer,
                self.config,
                xl,
                yl,
                xu,
                self.rng,
                parallel=self.parallel,
                labelled=part_l,
                unlabelled=part_u,
            )
        return dict(zip(self.keys, scalars.tolist()))

    def apply(self) -> None:
        apply_schedule(self.optimizer, self.config, self.step, self.steps)
        self.optimizer.step()
        self.step += 1

    def after_step(self) -> Iterator[Event]:
        if (
            self.main
            and len(self.eval_set[0])
            and (self.step % self.config.eval_every == 0 or self.step == self.steps)
        ):
            yield self._evaluation()

    def state_dict(self) -> dict[str, Any]:
        cycles = {"lab": self.lab.state_dict()}
        if self.unl is not None:
            cycles["unl"] = self.unl.state_dict()
        return {
            "arch": self.config.arch,
            "step": self.step,
            "model": self.model.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_state": self.rng.get_state(),
            "dropout_rng": self.dropout_rng.state_dict(),
            "history": self.history,
            "labelled": self.labelled,
            "cycles": cycles,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint of the same labelled subset (else :class:`ConfigError`);
        the learning rate comes from the current config."""
        if not torch.equal(state["labelled"], self.labelled):
            raise ConfigError(
                f"{self.config.checkpoint_path} was trained on another labelled "
                "subset (other data, seed or labels_per_class); match them to "
                "resume"
            )
        self.model.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
        self.rng.set_state(state["rng_state"])
        self.dropout_rng.load_state_dict(state["dropout_rng"])
        for name, cycle in (("lab", self.lab), ("unl", self.unl)):
            if cycle is not None and name in state["cycles"]:
                cycle.load_state_dict(state["cycles"][name])
        self.step, self.history = int(state["step"]), [dict(h) for h in state["history"]]


def train_vat(config: VatConfig, data: Any = None) -> Generator[Event, None, VatResult]:
    """Semi-supervised training with VAT (a job: drive it with ``jobs.drive``).

    Each step: cross-entropy on ``labelled_batch`` labelled digits (train mode) plus
    ``alpha`` x :func:`vat_loss` on ``unlabelled_batch`` unlabelled ones (eval mode; plus their
    prediction entropy with ``entropy_min``), one Adam update. ``supervised_only`` drops the
    unlabelled terms: the baseline on the same labels.

    ``data``: optional ``(x, y)`` to split instead of ``config.dataset``'s train split (the
    4,000 bundled training digits by default); the labels per class are drawn from it.
    Yields per step ``Metrics(step, {loss, ce, [lds,] [entropy,] batch_acc, grad_norm})`` and
    ``Progress``; every ``eval_every`` steps ``Metrics(step, {test_acc})``. Returns a
    :class:`VatResult`. Raises :class:`ConfigError` (e.g. more labels than the data has),
    :class:`~advstudio.core.errors.TrainingDivergedError`,
    :class:`~advstudio.core.errors.CheckpointError`.
    """
    if data is None and not config.dry_run:
        from advstudio.core.models.download import fetch_data

        yield from fetch_data(config.dataset)  # a torchvision set: once, with progress and Cancel
    device = pick_device(config.device)
    data_logs: list[str] = []
    digit_net = config.arch in DIGIT_ARCHITECTURES
    shape, names = IMAGE_SHAPE, list(DIGIT_CLASSES)
    classes = 10
    if data is not None:
        x, y = check_data(data) if digit_net else check_data(data, shape=None, num_classes=None)
        if not digit_net:
            shape = tuple(int(s) for s in x.shape[1:])
            classes = max(int(y.max()) + 1, 2)
            names = [str(i) for i in range(classes)]
            check_arch_data(config.arch, config.dataset, shape, classes)
    elif config.dry_run:
        shape, names = dry_run_geometry(config.arch, config.dataset)
        classes = len(names)
        x, y = fake_digits(4 * classes if classes > 10 else DRY_RUN_IMAGES, config.seed, shape)
        y = torch.arange(len(x)) % classes
    elif config.dataset == "digits":
        x, y = load_digits("train")
    else:
        sets = training_sets(config.dataset, config.arch, config.eval_images, config.seed)
        (x, y), held_out, data_logs = sets.train, sets.held, sets.lines
        shape, names = sets.shape, sets.class_names
        classes = int(y.max()) + 1 if digit_net else len(names)
    per_class = min(config.labels_per_class, 2) if config.dry_run else config.labels_per_class
    labelled, unlabelled = split_labelled(y, per_class, config.seed, classes)
    use_vat = not config.supervised_only
    if use_vat and len(unlabelled) == 0:
        raise ConfigError(
            f"labels_per_class {per_class} labels all {len(y)} training images; "
            "VAT needs unlabelled ones (or set supervised_only)"
        )
    if config.dry_run:
        eval_set = fake_digits(8, config.seed + 2, shape, len(names))
    elif data_logs:
        eval_set = held_out
    elif config.eval_images and shape == IMAGE_SHAPE:
        eval_set = heldout_digits(config.eval_images, config.seed)
    else:  # no evaluation
        eval_set = (torch.empty(0, *shape), torch.empty(0, dtype=torch.long))
    steps = 1 if config.dry_run else config.steps
    save_path = "" if config.dry_run else config.save_path
    run = VatTraining(
        config,
        (x, y),
        labelled,
        unlabelled if use_vat else None,
        eval_set,
        steps,
        device,
        shape,
        names,
    )
    lab, unl = run.lab, run.unl
    check_batch(lab.batch, "labelled_batch")
    if unl is not None:
        check_batch(unl.batch, "unlabelled_batch")
    what = (
        "supervised only"
        if not use_vat
        else (
            f"VAT (xi {config.xi:g}, L2 eps {config.eps:g}, {config.power_iterations} power "
            f"iteration{'s' if config.power_iterations > 1 else ''}, alpha {config.alpha:g}"
            + (", entropy minimisation" if config.entropy_min else "")
            + ")"
        )
    )
    header = (
        f"{what} on {config.arch}: {len(labelled)} labelled + "
        f"{len(unlabelled) if use_vat else 0} unlabelled images, batch {lab.batch}"
        + (f" + {unl.batch}" if unl is not None else "")
        + f", {steps} steps on "
        + describe(device)
        + (" (dry run)" if config.dry_run else "")
    )
    checkpoint = (
        CheckpointFile(
            config.checkpoint_path,
            lambda path, state: save_checkpoint(path, CHECKPOINT_KIND, state),
            lambda path: load_checkpoint(path, CHECKPOINT_KIND, expect={"arch": config.arch}),
            write=run.main,
        )
        if config.checkpoint_path
        else None
    )
    plan = Plan(
        length=steps,
        total=steps,
        message=run.message,
        header=header,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        resume=config.resume,
        dry_run=config.dry_run,
        divergence=Divergence(config.max_loss),
    )
    logs = list(data_logs)
    for line in logs:
        yield Log(line)
    saved = yield from relay(fit(run, plan), keeping_logs(logs))
    run.model.eval()
    weights = cpu_state(run.model.net)
    if save_path and run.main:
        text = save_model(weights, save_path, config.arch, run.model)
        logs.append(text)
        yield Log(text)
    history = run.history
    return VatResult(
        config=config,
        history=list(history),
        test_acc=history[-1]["test_acc"] if history else float("nan"),
        state_dict=weights,
        parameters=count_parameters(run.model.net),
        labelled=len(labelled),
        unlabelled=len(unlabelled) if use_vat else 0,
        save_path=save_path,
        checkpoint_path=saved,
        logs=logs,
        input_shape=shape,
        class_names=names,
    )


@contextmanager
def lds_mode(model: nn.Module, batch_stats: bool) -> Iterator[nn.Module]:
    """The mode the LDS term runs in: eval mode (dropout off; the digit networks, as before),
    or with ``batch_stats`` BatchNorm on the unlabelled batch's own statistics without
    updating its running ones, as Miyato et al.'s code does (``update_batch_stats=False``).
    A BatchNorm net (small-cnn, the ResNets) whose LDS gradient flows through frozen running
    statistics collapsed to one class within 40 steps on the colour shapes; with batch
    statistics it learns. Every flag and momentum is restored afterwards."""
    with eval_mode(model):
        if not batch_stats:
            yield model
            return
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m, m.momentum) for m in norms]
        for m in norms:
            m.train()
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        try:
            yield model
        finally:
            for m, momentum in saved:
                m.momentum = momentum


def vat_step_keys(config: VatConfig) -> tuple[str, ...]:
    """Per-step metric names: ``loss`` (the total), ``ce`` (labelled cross-entropy), ``lds``
    (VAT), ``entropy`` (with ``entropy_min``), ``batch_acc`` (labelled batch, train mode),
    ``grad_norm``."""
    keys = ["loss", "ce"]
    if not config.supervised_only:
        keys.append("lds")
        if config.entropy_min:
            keys.append("entropy")
    return (*keys, "batch_acc", "grad_norm")


def vat_gradients(
    model: Classifier,
    pixel_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: VatConfig,
    xl: torch.Tensor,
    yl: torch.Tensor,
    xu: torch.Tensor | None,
    generator: torch.Generator | None = None,
    *,
    parallel: nn.Module | None = None,
    labelled: Shard | None = None,
    unlabelled: Shard | None = None,
) -> torch.Tensor:
    """Gradients of one VAT step (no update): the labelled cross-entropy in train mode, the
    LDS (and entropy) of the unlabelled batch ``xu`` in eval mode. Returns the scalars in
    :func:`vat_step_keys` order.

    In a data-parallel run ``xl`` and ``xu`` are this process's ``labelled`` and
    ``unlabelled`` rows of the global batches, the supervised pass goes through ``parallel``
    (the model in DDP, which averages the gradients) and the scalars are the whole batches'."""
    labelled = labelled or shard(len(xl))
    unlabelled = unlabelled or shard(0 if xu is None else len(xu))
    optimizer.zero_grad(set_to_none=True)
    model.train()  # explicit: the supervised pass uses dropout
    with sharded(labelled):
        logits_l = (parallel or model)(xl)
    ce = F.cross_entropy(logits_l, yl)
    loss, scalars = labelled.scale(ce), [ce.detach()]
    if xu is not None:
        with lds_mode(pixel_model, batch_stats=config.arch not in DIGIT_ARCHITECTURES):
            if config.entropy_min:
                logits_u = pixel_model(xu)  # with gradient: the entropy term trains on it
            else:
                with torch.no_grad():
                    logits_u = pixel_model(xu)
            lds = vat_loss(
                pixel_model,
                xu,
                xi=config.xi,
                eps=config.eps,
                power_iterations=config.power_iterations,
                logits=logits_u,
                generator=generator,
                part=unlabelled,
            )
            loss = loss + config.alpha * unlabelled.scale(lds)
            scalars.append(lds.detach())
            if config.entropy_min:
                log_p = F.log_softmax(logits_u.float(), dim=1)
                entropy = -(log_p.exp() * log_p).sum(1).mean()
                loss = loss + unlabelled.scale(entropy)
                scalars.append(entropy.detach())
    loss.backward()
    acc = (logits_l.detach().argmax(1) == yl).float().mean()
    grad_norm = torch.nn.utils.get_total_norm(  # DDP averaged the gradients already
        [p.grad for p in model.parameters() if p.grad is not None]
    )
    if labelled.single:
        return torch.stack([loss.detach(), *scalars, acc, grad_norm.to(loss.device)])
    # the whole batches' values: labelled terms over the labelled rows, the rest the unlabelled
    ce, acc = batch_mean(torch.stack([scalars[0], acc]), labelled)
    rest = list(batch_mean(torch.stack(scalars[1:]), unlabelled)) if len(scalars) > 1 else []
    total = ce + config.alpha * rest[0] + sum(rest[1:]) if rest else ce
    return torch.stack([total, ce, *rest, acc, grad_norm.to(ce.device)])
