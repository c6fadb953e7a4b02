"""Black-box attacks: the target is only a ``predict`` callable, never differentiated.

``predict(x01) -> scores``: images in [0, 1] (N, C, H, W) to (N, classes) logits *or*
probabilities (rows of non-negative numbers summing to 1 are taken as probabilities, anything
else as logits). Every call to it goes through :class:`Oracle`, which runs it under
``torch.no_grad()`` and counts queries per image, so no backward pass can ever reach the target.

- :func:`transfer`: craft on a white-box surrogate, test on the target (2 queries per image);
- :func:`nes` / :func:`spsa`: estimate the gradient sign from queries, then L-inf sign steps;
- :func:`simba`: SimBA, one random pixel at a time (Guo et al. 2019).

Units: pixels and ``eps`` in [0, 1]. Budgets and ``queries`` count images sent to ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.whitebox import (
    Attack,
    Labels,
    as_labels,
    check_alpha,
    check_eps,
    check_images,
    check_steps,
    check_targets,
    eval_mode,
    fgsm,
    project,
)
from advstudio.core.errors import ConfigError

Predict = Callable[[torch.Tensor], torch.Tensor]


def as_predict(model: nn.Module) -> Predict:
    """A module as a black box: eval mode, no gradients, softmax probabilities out."""

    def predict(x01: torch.Tensor) -> torch.Tensor:
        with eval_mode(model), torch.no_grad():
            return torch.softmax(model(x01).float(), dim=1)

    return predict


class Oracle:
    """The only door to the target: ``no_grad`` calls, log-probabilities out, chunked batches."""

    def __init__(self, predict: Predict, chunk: int = 1024) -> None:
        self.predict = predict
        self.chunk = chunk

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scores = torch.cat([self.predict(part) for part in x.split(self.chunk)]).float()
        if scores.dim() != 2:
            raise ConfigError(f"predict must return (N, classes) scores, not {tuple(scores.shape)}")
        rows = scores.sum(1)
        if bool((scores >= 0).all()) and bool(((rows - 1).abs() < 1e-3).all()):
            return scores.clamp_min(1e-30).log()
        return F.log_softmax(scores, dim=1)


def margin(log_probs: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """What the query attacks climb; > 0 exactly when the attack has succeeded.

    Untargeted: ``max_{j != y} log p_j - log p_y``; targeted: ``log p_t - max_{j != t} log p_j``.
    """
    own = log_probs.gather(1, labels[:, None])[:, 0]
    others = log_probs.scatter(1, labels[:, None], float("-inf")).amax(1)
    return own - others if targeted else others - own


@dataclass(frozen=True)
class TransferResult:
    """``success[i]``: the target misclassifies (untargeted) or predicts the target class
    (targeted) on ``x_adv[i]``. ``counted[i]``: the image counts towards :attr:`success_rate`
    (untargeted: the target classified the clean image right; targeted: it did not already
    predict the target class)."""

    x_adv: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    surrogate_success: torch.Tensor
    success: torch.Tensor
    counted: torch.Tensor
    queries: int

    @property
    def success_rate(self) -> float:
        n = int(self.counted.sum())
        return float((self.success & self.counted).sum()) / n if n else 0.0


@dataclass(frozen=True)
class QueryResult:
    """Outcome of a query attack: ``queries[i]`` images of ``x_adv[i]``'s history were sent to
    ``predict`` (the clean query included); never more than the budget."""

    x_adv: torch.Tensor
    success: torch.Tensor
    queries: torch.Tensor

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())


def transfer(
    surrogate: nn.Module,
    target_predict: Predict,
    x: torch.Tensor,
    y: Labels,
    *,
    attack: Attack = fgsm,
    targeted: bool = False,
    **attack_kwargs,
) -> TransferResult:
    """Transfer attack (Papernot et al. 2016, arXiv:1605.07277): white-box ``attack`` on the
    ``surrogate``, then one clean and one adversarial query per image to the target.

    ``attack_kwargs`` go to the white-box attack (``eps`` and e.g. ``alpha``, ``steps``).
    ``y``: true labels, or target classes when ``targeted``.

    >>> res = transfer(load_builtin("digits-mlp"), as_predict(cnn), x, y, attack=mifgsm,
    ...                eps=0.2, alpha=0.02, steps=10)
    """
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    x_adv = attack(surrogate, xb, labels, targeted=targeted, **attack_kwargs)
    with eval_mode(surrogate), torch.no_grad():
        surrogate_pred = surrogate(x_adv).argmax(1)
    oracle = Oracle(target_predict)
    clean_pred = oracle.log_probs(xb).argmax(1)
    adv_pred = oracle.log_probs(x_adv).argmax(1)
    hit = (lambda p: p == labels) if targeted else (lambda p: p != labels)
    counted = (clean_pred != labels) if targeted else (clean_pred == labels)
    return TransferResult(
        x_adv[0] if single else x_adv,
        clean_pred,
        adv_pred,
        hit(surrogate_pred),
        hit(adv_pred),
        counted,
        2 * len(xb),
    )


def _check_budget(max_queries: int, per_step: int) -> int:
    check_steps(max_queries, "max_queries")
    if max_queries < per_step + 1:
        raise ConfigError(
            f"max_queries {max_queries} is too small: one step needs {per_step} "
            f"queries plus 1 for the clean image"
        )
    return max_queries


def _noise(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    rademacher: bool,
) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    if rademacher:
        u = torch.randint(0, 2, shape, generator=generator, device=gen_device).float() * 2 - 1
    else:
        u = torch.randn(shape, generator=generator, device=gen_device)
    return u.to(device)


def _sign_estimate_attack(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    max_queries: int,
    samples: int,
    sigma: float,
    alpha: float | None,
    momentum: float,
    targeted: bool,
    y_true: Labels | None,
    generator: torch.Generator | None,
    rademacher: bool,
) -> QueryResult:
    """The loop NES and SPSA share; they differ only in the noise distribution."""
    eps = check_eps(eps)
    samples = check_steps(samples, "samples")
    sigma = check_alpha(sigma)
    alpha = check_alpha(alpha) if alpha is not None else eps / 5
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum must be in [0, 1), not {momentum:g}")
    per_step = 2 * samples + 1
    _check_budget(max_queries, per_step)
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if targeted:
        check_targets(labels, y_true)
    oracle = Oracle(predict)
    queries = torch.ones(len(xb), dtype=torch.long, device=xb.device)
    success = margin(oracle.log_probs(xb), labels, targeted) > 0
    x_adv = xb.clone()
    grads = torch.zeros_like(xb)
    shape = xb.shape[1:]
    while True:
        active = (~success & (queries + per_step <= max_queries)).nonzero()[:, 0]
        if eps == 0 or active.numel() == 0:
            break
        xa, la = x_adv[active], labels[active]
        u = _noise((len(active), samples, *shape), generator, xb.device, rademacher)
        probes = torch.cat([xa[:, None] + sigma * u, xa[:, None] - sigma * u], 1).clamp(0, 1)
        m = margin(
            oracle.log_probs(probes.flatten(0, 1)), la.repeat_interleave(2 * samples), targeted
        ).view(len(active), 2 * samples)
        diff = (m[:, :samples] - m[:, samples:]).view(len(active), samples, *([1] * len(shape)))
        grads[active] = momentum * grads[active] + (1 - momentum) * (diff * u).sum(1)
        xa = project(xa + alpha * grads[active].sign(), xb[active], eps)
        x_adv[active] = xa
        success[active] = margin(oracle.log_probs(xa), la, targeted) > 0
        queries[active] += per_step
    return QueryResult(x_adv[0] if single else x_adv, success, queries)


def nes(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    max_queries: int = 2000,
    samples: int = 10,
    sigma: float = 0.01,
    alpha: float | None = None,
    momentum: float = 0.9,
    targeted: bool = False,
    y_true: Labels | None = None,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """NES gradient-sign attack (Ilyas et al. 2018, arXiv:1804.08598). Norm: L-inf.

    Each step spends ``2 * samples`` queries on antithetic Gaussian probes ``x +- sigma * u``
    to estimate the gradient of the :func:`margin`, plus one to check the new point, then takes
    a sign step of ``alpha`` (default ``eps / 5``) along the running average
    ``g = momentum * g + (1 - momentum) * estimate`` (as the authors' code; averaging the noisy
    estimates doubled the success rate on the digits), projected onto the eps-ball. An image stops
    when it succeeds or the next step would exceed ``max_queries`` (per image, clean query
    included).

    >>> res = nes(as_predict(cnn), x, y, eps=0.2, max_queries=1000)
    >>> res.success_rate, res.queries
    """
    return _sign_estimate_attack(
        predict,
        x,
        y,
        eps,
        max_queries=max_queries,
        samples=samples,
        sigma=sigma,
        alpha=alpha,
        momentum=momentum,
        targeted=targeted,
        y_true=y_true,
        generator=generator,
        rademacher=False,
    )


def spsa(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    max_queries: int = 2000,
    samples: int = 10,
    delta: float = 0.01,
    alpha: float | None = None,
    momentum: float = 0.9,
    targeted: bool = False,
    y_true: Labels | None = None,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """SPSA gradient-sign attack (Uesato et al. 2018, arXiv:1802.05666). Norm: L-inf.

    As :func:`nes` with Rademacher (+-1) probes of size ``delta``.

    >>> res = spsa(as_predict(cnn), x, y, eps=0.2, max_queries=1000)
    """
    return _sign_estimate_attack(
        predict,
        x,
        y,
        eps,
        max_queries=max_queries,
        samples=samples,
        sigma=delta,
        alpha=alpha,
        momentum=momentum,
        targeted=targeted,
        y_true=y_true,
        generator=generator,
        rademacher=True,
    )


def simba(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    *,
    step: float = 0.2,
    max_queries: int = 1000,
    targeted: bool = False,
    y_true: Labels | None = None,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """SimBA, pixel basis (Guo et al. 2019, arXiv:1905.07121). Norm: L-inf <= ``step``.

    Visits pixels in a random order (one permutation per image, each pixel at most once); tries
    ``-step`` then ``+step`` on that pixel and keeps the change if the probability of the true
    class drops (targeted: of the target class rises). One or two queries per pixel; a candidate
    that clipping to [0, 1] leaves unchanged is not sent. Stops per image on success, when the
    budget ``max_queries`` (clean query included) is spent, or when every pixel was tried.

    >>> res = simba(as_predict(cnn), x, y, step=0.3, max_queries=500)
    """
    step = check_eps(step, "step")
    _check_budget(max_queries, 1)
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    if targeted:
        check_targets(labels, y_true)
    oracle = Oracle(predict)
    n, d = len(xb), xb[0].numel()

    def score_and_success(x_query: torch.Tensor, lab: torch.Tensor):
        lp = oracle.log_probs(x_query)
        own = lp.gather(1, lab[:, None])[:, 0].exp()
        return (own if targeted else -own), margin(lp, lab, targeted) > 0

    best, success = score_and_success(xb, labels)
    queries = torch.ones(n, dtype=torch.long, device=xb.device)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    order = torch.stack(
        [torch.randperm(d, generator=generator, device=gen_device) for _ in range(n)]
    ).to(xb.device)
    flat = xb.flatten(1).clone()
    for k in range(d):
        pending = ~success & (queries < max_queries)
        for sign in (-1.0, 1.0):
            idx = pending.nonzero()[:, 0]
            if idx.numel() == 0:
                break
            coord = order[idx, k]
            old = flat[idx, coord]
            new = (old + sign * step).clamp(0.0, 1.0)
            moved = new != old
            idx, coord, new = idx[moved], coord[moved], new[moved]
            if idx.numel() == 0:
                continue
            cand = flat[idx].clone()
            cand[torch.arange(len(idx), device=idx.device), coord] = new
            score, hit = score_and_success(cand.view(-1, *xb.shape[1:]), labels[idx])
            queries[idx] += 1
            better = score > best[idx]
            keep = idx[better]
            flat[keep] = cand[better]
            best[keep] = score[better]
            success[keep] = hit[better]
            pending[keep] = False
            pending &= queries < max_queries
        if not bool((~success & (queries < max_queries)).any()):
            break
    x_adv = flat.view_as(xb)
    return QueryResult(x_adv[0] if single else x_adv, success, queries)
