"""HopSkipJump (Chen, Jordan & Wainwright 2020, arXiv:1904.02144): a decision-based attack, L2.

The attacker sees only the predicted *label* of each query: no scores, no gradients. From an
adversarial starting point it repeats three moves:

1. binary search along the line to the original image, onto the decision boundary;
2. estimate the boundary's normal there from the labels of ``B`` random probes
   ``x_b + delta * u`` (the mean of ``+-u`` by which side each landed on, a baseline
   subtracted);
3. jump along that direction with a geometrically shrinking step ``dist / sqrt(t)`` until the
   point is adversarial again.

The L2 distance to the original falls with each round. Every call to ``predict`` goes through a
counting, ``no_grad`` oracle with a hard per-image budget.

Units: pixels in [0, 1]; distances L2 over all pixel values. ``queries`` count images sent to
``predict`` per image, the clean one included.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from advstudio.core.attacks.blackbox import QueryResult, _check_budget
from advstudio.core.attacks.square import generator_device
from advstudio.core.attacks.whitebox import (
    Labels,
    as_labels,
    check_images,
    check_steps,
    eval_mode,
)
from advstudio.core.errors import ConfigError

LabelPredict = Callable[[torch.Tensor], torch.Tensor]
"""``predict(x01) -> (N,) int64`` predicted classes: all a decision-based attacker sees."""
Decide = Callable[[torch.Tensor], torch.Tensor]  # images -> (N,) bool: adversarial?
FIRST_DELTA = 0.1  # probe radius of the first round (later: sqrt(d) * theta * dist), as the paper


def as_label_predict(model: nn.Module) -> LabelPredict:
    """A module as a label-only black box: eval mode, no gradients, the argmax out.

    Most queries here are single images, where switching every submodule's mode and back
    cost 5 % of a digits-CNN query; a model already entirely in eval mode is called as is."""
    modules = list(model.modules())

    def predict(x01: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if not any(m.training for m in modules):
                return model(x01).argmax(1)
            with eval_mode(model):
                return model(x01).argmax(1)

    return predict


class _Spent(Exception):
    """The image's query budget is used up."""


class _Labels:
    """The only door to the target for one image: counted, ``no_grad``, within a budget."""

    def __init__(self, predict: LabelPredict, budget: int, chunk: int = 1024) -> None:
        self.predict, self.left, self.used, self.chunk = predict, budget, 0, chunk

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > self.left:
            raise _Spent
        with torch.no_grad():
            out = torch.cat([self.predict(part).reshape(-1) for part in x.split(self.chunk)])
        if out.shape != (len(x),) or out.is_floating_point():
            raise ConfigError(
                f"predict must return (N,) class indices, not {out.dtype} {tuple(out.shape)}"
            )
        self.left -= len(x)
        self.used += len(x)
        return out


def hop_skip_jump(
    predict: LabelPredict,
    x: torch.Tensor,
    y: Labels,
    *,
    targeted: bool = False,
    max_queries: int = 1000,
    steps: int = 64,
    gamma: float = 1.0,
    init_evals: int = 100,
    max_evals: int = 10_000,
    init_trials: int = 100,
    starts: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """HopSkipJump, L2 (Chen, Jordan & Wainwright 2020, arXiv:1904.02144, Algorithm 2).

    ``y``: the true labels (untargeted: success is any other label), or the target classes
    when ``targeted``. ``max_queries``: per image, the clean query included; ``steps``: the most
    rounds. ``gamma`` sets the binary search's precision ``theta = gamma / d^1.5`` (``d`` the
    number of pixel values) and the later probe radius ``sqrt(d) * theta * dist``;
    ``init_evals * sqrt(t)`` probes in round ``t``, at most ``max_evals`` (paper: 100, 10,000).

    Start: ``starts[i]`` if given and adversarial (needed for most targets: a digit of the
    target class), else uniform noise, up to ``init_trials`` draws. ``generator`` draws
    the noise and the probes. Images already adversarial, or with no adversarial start, come
    back unchanged (``success`` False for the latter).

    >>> res = hop_skip_jump(as_label_predict(cnn), x, y, max_queries=1000)
    >>> l2(x, res.x_adv), res.queries
    """
    _check_budget(max_queries, 1)
    steps, init_evals = check_steps(steps), check_steps(init_evals, "init_evals")
    max_evals, init_trials = (
        check_steps(max_evals, "max_evals"),
        check_steps(init_trials, "init_trials"),
    )
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ConfigError(f"gamma must be a finite number > 0, not {gamma:g}")
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if starts is not None and starts.shape != xb.shape:
        raise ConfigError(
            f"starts must have the images' shape {tuple(xb.shape)}, not {tuple(starts.shape)}"
        )
    out, success = xb.clone(), torch.zeros(len(xb), dtype=torch.bool, device=xb.device)
    queries = torch.zeros(len(xb), dtype=torch.long, device=xb.device)
    for i in range(len(xb)):
        oracle = _Labels(predict, max_queries)
        start = None if starts is None else starts[i : i + 1]
        out[i : i + 1], success[i] = _one(
            oracle,
            int(labels[i]),
            targeted,
            xb[i : i + 1],
            start,
            steps,
            gamma,
            init_evals,
            max_evals,
            init_trials,
            generator,
        )
        queries[i] = oracle.used
    return QueryResult(out[0] if single else out, success, queries)


def _one(
    oracle: _Labels,
    aim: int,
    targeted: bool,
    x0: torch.Tensor,
    start: torch.Tensor | None,
    steps: int,
    gamma: float,
    init_evals: int,
    max_evals: int,
    init_trials: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, bool]:
    """One image (a batch of one): (the closest boundary point found, success). A round's
    probes are cut to what the budget leaves after its binary search (``searches`` queries)
    and a jump or two."""

    def adversarial(z: torch.Tensor) -> torch.Tensor:
        pred = oracle(z)
        return pred == aim if targeted else pred != aim

    d = x0.numel()
    theta = gamma / d**1.5
    searches = math.ceil(math.log2(1 / theta))
    try:
        if bool(adversarial(x0)):
            return x0, True
        if start is None or not bool(adversarial(start)):
            start = None
            for _ in range(init_trials):
                noise = torch.rand(
                    x0.shape, generator=generator, device=generator_device(generator)
                ).to(x0)
                if bool(adversarial(noise)):
                    start = noise
                    break
            if start is None:
                return x0, False
    except _Spent:
        return x0, False
    x_adv = start
    try:
        x_adv = _to_boundary(adversarial, x0, x_adv, theta)
        dist = float((x_adv - x0).norm())
        for t in range(1, steps + 1):
            delta = FIRST_DELTA if t == 1 else math.sqrt(d) * theta * dist
            evals = min(int(init_evals * math.sqrt(t)), max_evals, oracle.left - searches - 2)
            if evals < 1:
                break
            direction = _normal(adversarial, x_adv, evals, delta, generator)
            step = dist / math.sqrt(t)
            while True:
                jumped = (x_adv + step * direction).clamp(0, 1)
                if bool(adversarial(jumped)):
                    break
                step /= 2
            x_adv = _to_boundary(adversarial, x0, jumped, theta)
            dist = float((x_adv - x0).norm())
    except _Spent:
        pass
    return x_adv, True


def _to_boundary(
    adversarial: Decide, x0: torch.Tensor, x_adv: torch.Tensor, theta: float
) -> torch.Tensor:
    """Binary search on ``x0 + a (x_adv - x0)``, ``a`` in [0, 1], down to a width ``theta``;
    the adversarial end. One query per halving."""
    low, high = 0.0, 1.0
    while high - low > theta:
        mid = (low + high) / 2
        if bool(adversarial(x0 + mid * (x_adv - x0))):
            high = mid
        else:
            low = mid
    return x0 + high * (x_adv - x0)


def _normal(
    adversarial: Decide,
    x_b: torch.Tensor,
    evals: int,
    delta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The estimated unit normal of the boundary at ``x_b``, pointing to the adversarial side:
    Monte-Carlo over ``evals`` Gaussian directions (Eq. 16 of the paper, the baseline
    subtracted unless all probes fall on one side)."""
    u = torch.randn(
        (evals, *x_b.shape[1:]), generator=generator, device=generator_device(generator)
    ).to(x_b)
    u = u / u.flatten(1).norm(dim=1).view(-1, *([1] * (u.dim() - 1)))
    probes = (x_b + delta * u).clamp(0, 1)
    u = (probes - x_b) / delta
    side = adversarial(probes).to(x_b.dtype) * 2 - 1
    mean = float(side.mean())
    if abs(mean) != 1.0:
        side = side - mean
    grad = (side.view(-1, *([1] * (u.dim() - 1))) * u).mean(0, keepdim=True)
    return grad / grad.norm().clamp_min(1e-12)
