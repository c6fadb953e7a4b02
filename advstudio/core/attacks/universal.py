"""Universal adversarial perturbations (Moosavi-Dezfooli, Fawzi, Fawzi & Frossard 2017,
"Universal adversarial perturbations", arXiv:1610.08401, Algorithm 1), L-inf, and its targeted
variant: one perturbation ``v`` with ``||v||_inf <= eps`` that changes the prediction of most
images of a data set at once.

Algorithm 1: start from ``v = 0``; pass over the images in a (seeded) random order; for each
image that ``v`` does not fool yet, find the smallest extra step ``r`` that sends ``x + v``
across the nearest decision boundary (DeepFool-style: linearise the logits, step to the
nearest linearised boundary, counting only the pixels the [0, 1] box lets move that way (on
digits most pixels are black: a step below 0 is lost), repeat up to ``inner_steps`` times,
overshoot 2 %), then project
``v + r`` back onto the eps-ball. Stop after ``passes`` passes or once the fooling rate on the
fitting images reaches ``1 - delta``; return the ``v`` of the best pass (the paper returns the
last; images pulling opposite ways can make later passes worse). Targeted: the inner steps aim at
the boundary of the
``target`` class only, and fooling means predicting it.

The L-inf step to a linearised boundary ``f + g . r = 0`` is ``r = |f| / ||g||_1 sign(-f g)``
(the dual norm of L-inf is L1). Images are clipped to [0, 1] after ``v`` is added. With many
classes only the ``CANDIDATES`` highest-scoring other classes are tried per step (DeepFool's
own shortcut), so a 1,000-class model costs ten gradients a step, not a thousand.

Any image shape (N, C, H, W): ``v`` has the images' (C, H, W). Against ε:
:func:`eps_curve_job` fits one perturbation per ε (each point its own Algorithm 1);
:func:`rescaled_curve_job` rescales one fitted ``v`` (cheap; not a guaranteed bound, but a
fit per ε usually fools more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advstudio.core.attacks.whitebox import check_eps, check_images, check_steps, eval_mode
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Job, Metrics, Progress, drive, relay

OVERSHOOT = 0.02  # DeepFool's overshoot, as in the paper
PER_MILLE = 1000  # a curve's progress unit: the fits' own totals differ (early stops)
CANDIDATES = 10  # other classes tried per DeepFool step (the highest-scoring ones)


def apply(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``clip(x + v, 0, 1)``: the perturbation on a batch (N, C, H, W) or one image."""
    return (x + v).clamp(0, 1)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model(c).argmax(1) for c in x.split(batch_size)])


def fooling_rate(
    model: nn.Module, x: torch.Tensor, v: torch.Tensor, target: int | None = None
) -> float:
    """Untargeted: the share of ``x`` whose prediction under ``clip(x + v)`` differs from the
    clean one (the paper's measure: labels not needed). Targeted: the share predicted as
    ``target`` under the perturbation, among the images not predicted so clean."""
    xb, _ = check_images(x)
    with eval_mode(model):
        clean, fooled = _predict(model, xb), _predict(model, apply(xb, v))
    if target is None:
        return float((clean != fooled).float().mean())
    keep = clean != target
    return float((fooled[keep] == target).float().mean()) if keep.any() else 0.0


def fooling_curve(
    model: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    eps: float,
    eps_values: Sequence[float],
    target: int | None = None,
) -> list[float]:
    """The fooling rate of ``v`` (fitted at ``eps``) rescaled to each of ``eps_values``:
    ``v * e / eps``. A cheap curve (one fit); a fit per eps does at least as well."""
    eps = check_eps(eps)
    scale = [check_eps(e) / eps if eps > 0 else 0.0 for e in eps_values]
    return [fooling_rate(model, x, v * s, target) for s in scale]


def _step(
    model: nn.Module, x: torch.Tensor, label: int, target: int | None, inner_steps: int
) -> torch.Tensor:
    """DeepFool-style L-inf steps from the single image ``x`` (1, C, H, W): the total step that
    leaves ``label`` (or reaches ``target``), with the overshoot, or after ``inner_steps``."""
    r = torch.zeros_like(x)
    for _ in range(inner_steps):
        z_in = apply(x, (1 + OVERSHOOT) * r).requires_grad_(True)
        logits = model(z_in)[0]
        pred = int(logits.argmax())
        if (target is None and pred != label) or (target is not None and pred == target):
            break
        if target is not None:
            others = [target]
        else:
            top = logits.detach().topk(min(CANDIDATES + 1, len(logits))).indices.tolist()
            others = [k for k in top if k != label][:CANDIDATES]
        best, best_step = float("inf"), None
        for k in others:
            f = logits[k] - logits[label]
            (g,) = torch.autograd.grad(f, z_in, retain_graph=True)
            up = (g > 0) == bool(f < 0)  # the pixels this step raises
            g = g * torch.where(up, z_in < 1, z_in > 0)  # pixels the box lets move that way
            g1 = float(g.abs().sum())
            if g1 == 0:
                continue
            f = f.detach()
            dist = abs(float(f)) / g1
            if dist < best:
                best, best_step = dist, (dist + 1e-4) * g.sign() * (1 if f < 0 else -1)
        if best_step is None:
            break
        r = r + best_step.detach()
    return (1 + OVERSHOOT) * r


@dataclass
class UniversalResult:
    """``v``: the perturbation (C, H, W), ``||v||_inf <= eps``. ``fit_rate`` / ``held_out_rate``:
    fooling rates on the fitting (the best pass's) and the held-out images; ``history``: the
    fitting rate after each pass. ``target``: the targeted variant's class, or None;
    ``n_held``: how many held-out images."""

    v: torch.Tensor
    eps: float
    target: int | None
    fit_rate: float
    held_out_rate: float
    history: list[float] = field(default_factory=list)
    n_held: int = 0


def universal_job(
    model: nn.Module,
    x_fit: torch.Tensor,
    x_held: torch.Tensor,
    eps: float,
    *,
    target: int | None = None,
    passes: int = 5,
    delta: float = 0.2,
    inner_steps: int = 10,
    seed: int = 0,
) -> Job[UniversalResult]:
    """Algorithm 1 on ``x_fit`` (N, C, H, W in [0, 1]), judged on ``x_held``. ``passes``: the
    paper's maximum number of passes over the data (5 here, digits converge in 2 to 4);
    ``delta``: stop once the fitting fooling rate reaches ``1 - delta`` (the paper's 0.2).
    Events: ``Progress`` per image, ``Metrics(pass, {"fooling_rate"})`` per pass."""
    eps = check_eps(eps)
    passes, inner_steps = check_steps(passes, "passes"), check_steps(inner_steps, "inner_steps")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta must be in [0, 1), not {delta!r}")
    xf, _ = check_images(x_fit)
    xh, _ = check_images(x_held)
    v = torch.zeros_like(xf[0:1])
    best_v, best_rate = v, -1.0
    history: list[float] = []
    order_gen = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        labels = _predict(model, xf)
        for p in range(passes):
            order = torch.randperm(len(xf), generator=order_gen).tolist()
            for j, i in enumerate(order):
                x_i = xf[i : i + 1]
                with torch.no_grad():
                    now = int(model(apply(x_i, v)).argmax())
                fooled = now == target if target is not None else now != int(labels[i])
                if not fooled and (target is None or int(labels[i]) != target):
                    with torch.enable_grad():
                        r = _step(
                            model,
                            apply(x_i, v),
                            now if target is not None else int(labels[i]),
                            target,
                            inner_steps,
                        )
                    v = (v + r).clamp(-eps, eps)
                if j % 50 == 0:
                    yield Progress(p * len(xf) + j, passes * len(xf), f"pass {p + 1}/{passes}")
            rate = fooling_rate(model, xf, v[0], target)
            history.append(rate)
            if rate > best_rate:
                best_v, best_rate = v.clone(), rate
            yield Metrics(p, {"fooling_rate": rate})
            if rate >= 1 - delta:
                break
    return UniversalResult(
        best_v[0].detach(),
        eps,
        target,
        best_rate,
        fooling_rate(model, xh, best_v[0], target),
        history,
        len(xh),
    )


def universal_perturbation(
    model: nn.Module, x_fit: torch.Tensor, x_held: torch.Tensor, eps: float, **kwargs
) -> UniversalResult:
    """:func:`universal_job` run to the end.

    >>> res = universal_perturbation(cnn, x[:500], x[500:], eps=0.2)
    >>> res.held_out_rate, res.v.abs().max()
    """
    return drive(universal_job(model, x_fit, x_held, eps, **kwargs)).result


@dataclass
class EpsCurve:
    """``held_out[i]`` / ``fit[i]``: the fooling rates at ``eps[i]``; ``refit``: one Algorithm 1
    per ε (``perturbations[i]`` its ``v``), else one ``v`` rescaled."""

    eps: list[float]
    held_out: list[float]
    fit: list[float]
    target: int | None
    refit: bool = True
    perturbations: list[torch.Tensor] = field(default_factory=list)


def _check_eps_values(eps_values: Sequence[float]) -> list[float]:
    if not eps_values:
        raise ConfigError("give at least one ε")
    return [check_eps(e) for e in eps_values]


def eps_curve_job(
    model: nn.Module,
    x_fit: torch.Tensor,
    x_held: torch.Tensor,
    eps_values: Sequence[float],
    **fit_kwargs,
) -> Job[EpsCurve]:
    """:func:`universal_job` at each of ``eps_values`` (same seed and settings), judged on
    ``x_held``. Events: the fits' progress rescaled to the whole curve and
    ``Metrics(i, {"eps", "fooling_rate", "fit_rate"})`` after each ε; cancel closes the fit in
    flight."""
    eps_values = _check_eps_values(eps_values)
    n = len(eps_values)
    out = EpsCurve(eps_values, [], [], fit_kwargs.get("target"), True)
    for i, eps in enumerate(eps_values):

        def rescale(event, i=i, eps=eps):
            if isinstance(event, Progress) and event.total:
                done = round(PER_MILLE * (i + event.done / event.total) / n)
                return Progress(done, PER_MILLE, f"ε {eps:g}: {event.message}")
            return None

        res = yield from relay(universal_job(model, x_fit, x_held, eps, **fit_kwargs), rescale)
        out.held_out.append(res.held_out_rate)
        out.fit.append(res.fit_rate)
        out.perturbations.append(res.v)
        yield Metrics(i, {"eps": eps, "fooling_rate": res.held_out_rate, "fit_rate": res.fit_rate})
    yield Progress(PER_MILLE, PER_MILLE, "done")
    return out


def rescaled_curve_job(
    model: nn.Module,
    x_fit: torch.Tensor,
    x_held: torch.Tensor,
    v: torch.Tensor,
    eps: float,
    eps_values: Sequence[float],
    target: int | None = None,
) -> Job[EpsCurve]:
    """:func:`fooling_curve` as a job: ``v`` (fitted at ``eps``) rescaled to each ε, its fooling
    rate on ``x_held`` (and ``x_fit``), one ``Metrics`` per ε."""
    eps_values = _check_eps_values(eps_values)
    out = EpsCurve(eps_values, [], [], target, False)
    for i, e in enumerate(eps_values):
        yield Progress(i, len(eps_values), f"ε {e:g}")
        held = fooling_curve(model, x_held, v, eps, [e], target)[0]
        fit = fooling_curve(model, x_fit, v, eps, [e], target)[0]
        out.held_out.append(held)
        out.fit.append(fit)
        yield Metrics(i, {"eps": e, "fooling_rate": held, "fit_rate": fit})
    yield Progress(len(eps_values), len(eps_values), "done")
    return out
