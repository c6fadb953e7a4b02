"""Square Attack (Andriushchenko et al. 2020, arXiv:1912.00049): random search on scores only.

Each iteration changes the perturbation on one random square window and keeps the change for
the images whose margin loss it lowered; the square's side shrinks on a fixed schedule. No
gradient is estimated, and the target is only ever seen through
:class:`~advstudio.core.attacks.blackbox.Oracle` (``no_grad``, counted queries).

- L-inf (:func:`square_linf`): start from vertical stripes of ``+-eps`` (one sign per column
  and channel), then set each window to a fresh ``+-eps`` per channel;
- L2 (:func:`square_l2`): start from a grid of "pseudo-Gaussian" bumps scaled to norm ``eps``,
  then move perturbation mass from a second window into a new bump on the first, keeping the
  norm at ``eps``.

As in the authors' code (github.com/max-andr/square-attack) one window position serves the whole
batch at each iteration. The loss is the logit margin (our :func:`~blackbox.margin` on
log-probabilities is the same number), also when targeted; the paper's targeted runs use
cross-entropy instead.

Units: pixels and ``eps`` in [0, 1] (``eps`` an L2 radius over all pixel values for L2).
``queries`` count images sent to ``predict`` per image, the clean one included.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from advstudio.core.attacks.blackbox import Oracle, Predict, QueryResult, _check_budget, margin
from advstudio.core.attacks.l2 import check_radius
from advstudio.core.attacks.whitebox import Labels, as_labels, check_eps, check_images
from advstudio.core.errors import ConfigError

HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
"""The paper's schedule: the square's area share ``p`` halves after each of these iterations
of a 10,000-iteration run; a shorter budget passes them at the same fractions."""


def square_fraction(p_init: float, i: int, iterations: int) -> float:
    """The share ``p`` of the image a square covers at iteration ``i`` of ``iterations``:
    ``p_init`` halved once per :data:`HALVINGS` point passed (rescaled to the budget)."""
    at = int(i / iterations * 10_000)
    return p_init / 2 ** sum(at > h for h in HALVINGS)


def _check_p(p_init: float) -> float:
    if not 0.0 < p_init <= 1.0:
        raise ConfigError(
            f"p_init (the first square's share of the image) must be in (0, 1], not {p_init:g}"
        )
    return float(p_init)


def generator_device(generator: torch.Generator | None) -> torch.device:
    """Where ``generator`` draws (the CPU without one)."""
    return generator.device if generator is not None else torch.device("cpu")


def _signs(
    shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """Uniform +-1 of ``shape`` from ``generator``, on ``like``'s device and dtype."""
    draw = torch.randint(0, 2, shape, generator=generator, device=generator_device(generator))
    return (draw * 2 - 1).to(like.device, like.dtype)


def _randint(high: int, generator: torch.Generator | None) -> int:
    where = generator_device(generator)
    return int(torch.randint(0, high, (1,), generator=generator, device=where))


def _norms(t: torch.Tensor, dims: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    return t.pow(2).sum(dims, keepdim=True).sqrt()


Start = Callable[[torch.Tensor], torch.Tensor]  # x -> first x_best
Propose = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]  # x, x_best, i, of


def _search(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    max_queries: int,
    targeted: bool,
    start: Start,
    propose: Propose,
) -> QueryResult:
    """The loop both norms share: clean query, ``start(xb)`` query, then one query per
    iteration of ``propose(xb, x_best, i, iterations)`` for the images not yet fooled."""
    _check_budget(max_queries, 1)
    xb, single = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    oracle = Oracle(predict)
    best = margin(oracle.log_probs(xb), labels, targeted)  # > 0: fooled
    queries = torch.ones(len(xb), dtype=torch.long, device=xb.device)
    x_best = xb.clone()
    todo = (best <= 0).nonzero()[:, 0]
    if eps > 0 and todo.numel() and max_queries > 1:
        x_init = start(xb[todo])
        m = margin(oracle.log_probs(x_init), labels[todo], targeted)
        queries[todo] += 1
        x_best[todo], best[todo] = x_init, m
        iterations = max_queries - 2
        for i in range(iterations):
            todo = (best <= 0).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            x_new = propose(xb[todo], x_best[todo], i, iterations)
            m = margin(oracle.log_probs(x_new), labels[todo], targeted)
            queries[todo] += 1
            better = m > best[todo]
            x_best[todo[better]], best[todo[better]] = x_new[better], m[better]
    return QueryResult(x_best[0] if single else x_best, best > 0, queries)


def square_linf(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    max_queries: int = 1000,
    p_init: float = 0.05,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """Square Attack, L-inf (Andriushchenko et al. 2020, arXiv:1912.00049, Algorithm 1).

    Start: ``clip(x + eps * s)`` with one random sign ``s`` per column and channel (vertical
    stripes: the paper found them the best start for L-inf). Then, per iteration, a window of
    side ``round(sqrt(p * H * W))`` (``p`` from :func:`square_fraction`, ``p_init`` default
    0.05 as the paper's ImageNet / CIFAR-10 setting) at a random position gets a new sign per
    image and channel; where that sign would change nothing (the window already had it) it is
    flipped, so every query tries something new (the authors' code redraws instead). ``y``: true
    labels, or target classes when ``targeted``. ``generator`` draws positions and signs.

    >>> res = square_linf(as_predict(cnn), x, y, eps=0.2, max_queries=1000)
    """
    eps, p_init = check_eps(eps), _check_p(p_init)

    def start(x0: torch.Tensor) -> torch.Tensor:
        n, c, _, w = x0.shape
        return (x0 + eps * _signs((n, c, 1, w), generator, x0)).clamp(0, 1)

    def propose(x0: torch.Tensor, x_best: torch.Tensor, i: int, iterations: int) -> torch.Tensor:
        n, c, h, w = x0.shape
        side = min(max(round(math.sqrt(square_fraction(p_init, i, iterations) * h * w)), 1), h - 1)
        r, q = _randint(h - side + 1, generator), _randint(w - side + 1, generator)
        window = (slice(None), slice(None), slice(r, r + side), slice(q, q + side))
        sign = _signs((n, c, 1, 1), generator, x0)
        patch = (x0[window] + eps * sign).clamp(0, 1)
        same = (patch - x_best[window]).abs().flatten(1).amax(1).view(-1, 1, 1, 1) < 1e-7
        x_new = x_best.clone()
        x_new[window] = torch.where(same, (x0[window] - eps * sign).clamp(0, 1), patch)
        return x_new

    return _search(predict, x, y, eps, max_queries, targeted, start, propose)


def _bump(rows: int, cols: int) -> torch.Tensor:
    """The paper's pseudo-Gaussian: nested rectangles around the centre, the k-th weighted
    ``1 / (k + 1)^2``, unit L2 norm."""
    bump = torch.zeros(rows, cols)
    r0, c0 = rows // 2, cols // 2
    for k in range(max(r0, c0) + 1):
        bump[max(r0 - k, 0) : r0 + k + 1, max(c0 - k, 0) : c0 + k + 1] += 1.0 / (k + 1) ** 2
    return bump / bump.norm()


def _twin_bump(side: int, generator: torch.Generator | None) -> torch.Tensor:
    """Two bumps of opposite sign, one in each half of a ``side`` square (the halves split by
    rows, or by columns with probability 1/2), unit L2 norm."""
    half = side // 2
    bump = torch.cat([_bump(half, side), -_bump(side - half, side)]) if half else _bump(side, side)
    bump = bump / bump.norm()
    flip = torch.rand(1, generator=generator, device=generator_device(generator))
    return bump.T if bool(flip > 0.5) else bump


def square_l2(
    predict: Predict,
    x: torch.Tensor,
    y: Labels,
    eps: float,
    *,
    max_queries: int = 1000,
    p_init: float = 0.1,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> QueryResult:
    """Square Attack, L2 (Andriushchenko et al. 2020, arXiv:1912.00049, Algorithm 3).

    Start: a 5 x 5 grid of twin pseudo-Gaussian bumps with random signs per channel, scaled to
    L2 norm ``eps``. Per iteration: a window of odd side ``>= 3`` (``p_init`` default 0.1, the
    paper's L2 setting) gets a fresh signed twin bump added to its normalised old content;
    a second window of the same size is emptied and its mass (with any norm left under the
    budget) goes to the first; the whole perturbation is rescaled to norm ``eps`` and clipped.
    ``eps``: the L2 radius over all pixel values (e.g. 2.0 on 28 x 28 digits).

    >>> res = square_l2(as_predict(cnn), x, y, eps=2.0, max_queries=1000)
    """
    eps, p_init = check_radius(eps), _check_p(p_init)

    def start(x0: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x0.shape
        side = max(h // 5, 1)
        offset = (h - 5 * side) // 2
        delta = torch.zeros_like(x0)
        for r in range(offset, h - side + 1, side):
            for q in range(offset, w - side + 1, side):
                bump = _twin_bump(side, generator).to(x0)
                delta[..., r : r + side, q : q + side] += bump * _signs((n, c, 1, 1), generator, x0)
        return (x0 + delta / _norms(delta).clamp_min(1e-12) * eps).clamp(0, 1)

    def propose(x0: torch.Tensor, x_best: torch.Tensor, i: int, iterations: int) -> torch.Tensor:
        n, c, h, w = x0.shape
        side = max(round(math.sqrt(square_fraction(p_init, i, iterations) * h * w)), 3)
        side = min(side + (side % 2 == 0), h - 1)
        r, q = _randint(h - side, generator), _randint(w - side, generator)
        r2, q2 = _randint(h - side, generator), _randint(w - side, generator)
        one = (..., slice(r, r + side), slice(q, q + side))
        two = (..., slice(r2, r2 + side), slice(q2, q2 + side))
        delta = x_best - x0
        both = torch.zeros_like(delta)
        both[one], both[two] = 1.0, 1.0
        spare = (eps**2 - _norms(delta).pow(2)).clamp_min(0) / c + _norms(delta * both, (2, 3)).pow(
            2
        )
        new = _twin_bump(side, generator).to(x0) * _signs((n, c, 1, 1), generator, x0)
        new = new + delta[one] / (_norms(delta[one], (2, 3)) + 1e-10)
        new = new / _norms(new, (2, 3)).clamp_min(1e-12) * spare.sqrt()
        delta[two] = 0.0
        delta[one] = new
        return (x0 + delta / _norms(delta).clamp_min(1e-12) * eps).clamp(0, 1)

    return _search(predict, x, y, eps, max_queries, targeted, start, propose)
