"""Adversarial patch (Brown, Mané, Roy, Abadi & Gilmer 2017, "Adversarial patch",
arXiv:1712.09665): a small square image that, pasted anywhere on an input, makes the model
predict a chosen ``target`` class. Not a bounded perturbation: the patch replaces the pixels
under it.

Pasting: ``A(p, x, t) = (1 - m_t) x + T_t(m p)``, ``T_t`` an affine map (rotation, scale,
translation) of the patch into the image and ``m_t = T_t(m)`` the same map of an all-ones mask
(bilinear, so its edge is soft; the moved patch is already weighted by its coverage, so the
edge blends the two images instead of darkening). Inside the mask the image is the patch; where
the mask is 0 it is untouched. Training maximises ``E_{x, t} log P(target | A(p, x, t))``
over images and random transforms (Expectation over Transformation): each step draws a batch
of images and one transform per image, and a signed gradient step (``lr`` 0.01 per pixel, as
PGD steps; torch's Adam would pull in the compiler on its first step, 18 s here) moves the
patch, clipped to [0, 1].

Defaults: the patch side is ``sqrt(area * H * W)`` pixels (``area``: share of the image,
0.1 = 10 %); scale uniform in [0.8, 1.2], rotation uniform in [-22.5, 22.5] degrees, the centre
uniform over positions that keep the (rotated) patch inside the image. Any image size and
number of channels (C x H x W, H and W may differ); pixels in [0, 1].

Patch size: :func:`size_curve_job` judges one trained patch pasted at several sizes (the patch
rescaled by the placement, so one training gives the whole curve);
:func:`retrained_size_curve_job` trains one patch per size (each point its own EoT training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from advstudio.core.attacks.whitebox import check_images, check_steps, eval_mode
from advstudio.core.errors import ConfigError
from advstudio.core.images import from_tensor, save_png
from advstudio.core.jobs import Job, Metrics, Progress, drive, relay

SCALE = (0.8, 1.2)
MAX_ANGLE = 22.5  # degrees, either way
LEARNING_RATE = 0.01  # per-pixel step of the signed gradient


@dataclass(frozen=True)
class Placement:
    """Per image: ``angle`` (radians), ``scale`` and the patch centre (``row``, ``col``, in
    continuous pixel coordinates: pixel ``i`` spans [i, i + 1]), all (N,) tensors."""

    angle: torch.Tensor
    scale: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor


def patch_side(area: float, height: int, width: int) -> int:
    """The side in pixels of a square patch covering ``area`` of an H x W image (at least 1)."""
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not 0 < area <= 0.5:
        raise ConfigError(f"patch area must be a share of the image in (0, 0.5], not {area!r}")
    return max(1, round(math.sqrt(area * height * width)))


def sample_placements(
    n: int,
    side: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = SCALE,
    max_angle: float = MAX_ANGLE,
) -> Placement:
    """``n`` random transforms (EoT's draws; reproducible with a seeded ``generator``): the centre
    keeps the patch's circumscribed circle inside the image where it fits, else the centre."""
    u = torch.rand(4, n, generator=generator)
    angle = (2 * u[0] - 1) * math.radians(max_angle)
    s = scale[0] + (scale[1] - scale[0]) * u[1]
    radius = s * side / math.sqrt(2)
    lo_r, hi_r = radius.clamp(max=height / 2), (height - radius).clamp(min=height / 2)
    lo_c, hi_c = radius.clamp(max=width / 2), (width - radius).clamp(min=width / 2)
    return Placement(angle, s, lo_r + (hi_r - lo_r) * u[2], lo_c + (hi_c - lo_c) * u[3])


def fixed_placement(
    n: int, row: float, col: float, angle: float = 0.0, scale: float = 1.0
) -> Placement:
    """The same placement for ``n`` images: centre (``row``, ``col``) in pixels, ``angle`` in
    degrees (the panel's drag)."""

    def full(v: float) -> torch.Tensor:
        return torch.full((n,), float(v))

    return Placement(full(math.radians(angle)), full(scale), full(row), full(col))


def _canvas(patch: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The patch (C, S, S) centred on a zero canvas (1, C, H, W) with an all-ones mask channel."""
    c, side, _ = patch.shape
    top, left = (height - side) // 2, (width - side) // 2
    canvas = torch.zeros(1, c + 1, height, width, dtype=patch.dtype, device=patch.device)
    if side > min(height, width):
        raise ConfigError(f"a {side}-pixel patch does not fit a {height} x {width} image")
    canvas[0, :c, top : top + side, left : left + side] = patch
    canvas[0, c, top : top + side, left : left + side] = 1
    return canvas


def paste(
    x: torch.Tensor, patch: torch.Tensor, where: Placement
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A(p, x, t), m_t)``: the patched batch (N, C, H, W) and the masks (N, 1, H, W) in
    [0, 1]. Differentiable in ``patch``."""
    n, c, h, w = x.shape
    canvas = _canvas(patch.to(x.dtype), h, w).expand(n, -1, -1, -1)
    # output pixel u -> canvas pixel R(-angle) (u - centre) / scale + canvas centre, written in
    # affine_grid's normalised coordinates (x_n = 2 x / W - 1 per axis)
    cos, sin = torch.cos(where.angle) / where.scale, torch.sin(where.angle) / where.scale
    sx, sy = 2 / w, 2 / h
    a = torch.stack(
        [torch.stack([cos, sin * sx / sy], 1), torch.stack([-sin * sy / sx, cos], 1)], 1
    )  # D R D^-1 / s
    centre = torch.stack([where.col * sx - 1, where.row * sy - 1], 1)
    side = patch.shape[-1]
    mid = torch.tensor(
        [((w - side) // 2 + side / 2) * sx - 1, ((h - side) // 2 + side / 2) * sy - 1]
    )  # the patch on the canvas
    offset = mid - (a @ centre[:, :, None])[:, :, 0]
    theta = torch.cat([a, offset[:, :, None]], 2).to(x.device, x.dtype)
    grid = nn.functional.affine_grid(theta, [n, c + 1, h, w], align_corners=False)
    moved = nn.functional.grid_sample(canvas, grid, align_corners=False)
    mask = moved[:, c:].clamp(0, 1)
    # the moved colours are premultiplied by the coverage (same bilinear weights as the mask)
    return (1 - mask) * x + torch.minimum(moved[:, :c].clamp(min=0), mask), mask


@dataclass
class PatchResult:
    """``patch`` (C, S, S) in [0, 1]; ``target``; ``area``; ``success``: the share of held-out
    images (not already the target) predicted as the target with a random placement each, of
    ``n_test`` held-out images; ``history``: the training loss per logged step."""

    patch: torch.Tensor
    target: int
    area: float
    success: float
    history: list[float] = field(default_factory=list)
    n_test: int = 0


def success_rate(
    model: nn.Module,
    x: torch.Tensor,
    patch: torch.Tensor,
    target: int,
    seed: int = 1,
    resize: float = 1.0,
) -> float:
    """The share of ``x`` not predicted as ``target`` clean that a randomly placed patch
    (one seeded draw per image, the training's scale range times ``resize``) sends to
    ``target``."""
    xb, _ = check_images(x)
    gen = torch.Generator().manual_seed(seed)
    scale = (SCALE[0] * resize, SCALE[1] * resize)
    where = sample_placements(len(xb), patch.shape[-1], *xb.shape[-2:], gen, scale)
    with eval_mode(model), torch.no_grad():
        keep = model(xb).argmax(1) != target
        hit = model(paste(xb, patch, where)[0]).argmax(1) == target
    return float(hit[keep].float().mean()) if keep.any() else 0.0


def train_patch_job(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    target: int,
    *,
    area: float = 0.1,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = LEARNING_RATE,
    seed: int = 0,
) -> Job[PatchResult]:
    """EoT training of a targeted patch on ``x_train``, judged on ``x_test``. ``steps``: signed
    gradient steps of ``lr`` (300 at batch 32 on the digits). Events: ``Progress`` and
    ``Metrics(step, {"loss"})`` every 10 steps."""
    xb, _ = check_images(x_train)
    steps, batch_size = check_steps(steps), check_steps(batch_size, "batch_size")
    c, h, w = xb.shape[1:]
    side = patch_side(area, h, w)
    gen = torch.Generator().manual_seed(seed)
    patch = torch.rand(c, side, side, generator=gen).to(xb.device)
    history: list[float] = []
    with eval_mode(model):
        classes = int(model(xb[:1]).shape[1])
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < classes:
            raise ConfigError(f"target must be a class in [0, {classes - 1}], not {target!r}")
        goal = torch.full((batch_size,), target, device=xb.device)
        for step in range(steps):
            idx = torch.randint(len(xb), (batch_size,), generator=gen).to(xb.device)
            where = sample_placements(batch_size, side, h, w, gen)
            with torch.enable_grad():
                p = patch.requires_grad_(True)
                loss = nn.functional.cross_entropy(model(paste(xb[idx], p, where)[0]), goal)
                (grad,) = torch.autograd.grad(loss, p)
            patch = (patch.detach() - lr * grad.sign()).clamp(0, 1)
            if step % 10 == 0 or step == steps - 1:
                history.append(float(loss.detach()))
                yield Metrics(step, {"loss": history[-1]})
                yield Progress(step + 1, steps, f"patch step {step + 1}/{steps}")
    final = patch.detach()
    return PatchResult(
        final.cpu(),
        target,
        area,
        success_rate(model, x_test, final, target),
        history,
        len(x_test),
    )


@dataclass
class SizeCurve:
    """``success[i]``: the held-out success rate with the patch covering ``areas[i]`` of the
    image (share of H x W, before the EoT scale draw). ``retrained``: one training per size
    (else one patch rescaled); ``patches``: the patches trained per size (retrained only)."""

    areas: list[float]
    success: list[float]
    target: int
    retrained: bool = False
    patches: list[torch.Tensor] = field(default_factory=list)


def _check_areas(areas: Sequence[float]) -> list[float]:
    if not areas:
        raise ConfigError("give at least one patch size")
    for a in areas:
        patch_side(a, 1, 1)  # the range check
    return [float(a) for a in areas]


def size_curve_job(
    model: nn.Module,
    x_test: torch.Tensor,
    patch: torch.Tensor,
    target: int,
    areas: Sequence[float],
    *,
    seed: int = 1,
) -> Job[SizeCurve]:
    """The success rate of one trained ``patch`` (C, S, S) on ``x_test`` pasted to cover each of
    ``areas``: the placement's scale times ``sqrt(area * H * W) / S``. Events per size:
    ``Progress`` and ``Metrics(i, {"area", "success"})``; cancel between sizes."""
    areas = _check_areas(areas)
    xb, _ = check_images(x_test)
    h, w = xb.shape[-2:]
    side = patch.shape[-1]
    success: list[float] = []
    for i, a in enumerate(areas):
        yield Progress(i, len(areas), f"patch size {a:.0%}")
        rate = success_rate(model, xb, patch, target, seed, math.sqrt(a * h * w) / side)
        success.append(rate)
        yield Metrics(i, {"area": a, "success": rate})
    yield Progress(len(areas), len(areas), "done")
    return SizeCurve(areas, success, target)


def retrained_size_curve_job(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    target: int,
    areas: Sequence[float],
    **train_kwargs,
) -> Job[SizeCurve]:
    """One :func:`train_patch_job` per size (same seed and settings), each judged on ``x_test``.
    Events: the trainings' progress rescaled to the whole curve, and
    ``Metrics(i, {"area", "success"})`` after each size."""
    areas = _check_areas(areas)
    success: list[float] = []
    patches: list[torch.Tensor] = []
    for i, a in enumerate(areas):

        def rescale(event, i=i, a=a):
            if isinstance(event, Progress):
                done = i * event.total + event.done
                return Progress(done, len(areas) * event.total, f"size {a:.0%}: {event.message}")
            return None  # the per-step losses stay inside

        res = yield from relay(
            train_patch_job(model, x_train, x_test, target, area=a, **train_kwargs), rescale
        )
        success.append(res.success)
        patches.append(res.patch)
        yield Metrics(i, {"area": a, "success": res.success})
    return SizeCurve(areas, success, target, True, patches)


def train_patch(
    model: nn.Module, x_train: torch.Tensor, x_test: torch.Tensor, target: int, **kwargs
) -> PatchResult:
    """:func:`train_patch_job` run to the end.

    >>> res = train_patch(cnn, x[:500], x[500:], target=3, area=0.1)
    >>> res.success; save_patch(res.patch, "patch.png")
    """
    return drive(train_patch_job(model, x_train, x_test, target, **kwargs)).result


def train_test_images(
    dataset: str,
    split: str,
    fit: str,
    model: nn.Module,
    n_train: int,
    n_test: int,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A seeded subset of ``dataset``'s ``split`` fitted to ``model.input_shape`` under ``fit``
    (:mod:`advstudio.core.data`), cut into ``n_train`` images to fit on and ``n_test`` held-out
    ones (a smaller set is cut in the same proportion). The patch and universal panels' data.
    Returns ``(x_train, x_test, lines to log)``."""
    from advstudio.core.data.fit import fit_to_model
    from advstudio.core.data.sets import load_dataset
    from advstudio.core.data.spec import check_dataset, check_fit, check_split

    check_dataset(dataset)
    check_split(split)
    check_fit(fit)
    n_train, n_test = check_steps(n_train, "n_train"), check_steps(n_test, "n_test")
    data = load_dataset(dataset, split, limit=n_train + n_test, seed=seed)
    classes = int(model.num_classes) if hasattr(model, "num_classes") else None
    if classes is not None and len(data.class_names) > classes:
        raise ConfigError(
            f"{dataset} has {len(data.class_names)} classes but the model has {classes} "
            "outputs; choose a data set of the model's classes"
        )
    if len(data.x) < 2:
        raise ConfigError(f"{data.source} ({split}) holds fewer than 2 readable images")
    lines = [f"data: {data.source} ({split}), {data.description}"]
    if data.skipped:
        lines.append(data.skipped_line())
    x, note = fit_to_model(data.x, tuple(model.input_shape), fit)
    if note:
        lines.append(f"fitted to the model: {note}")
    cut = n_train if len(x) >= n_train + n_test else max(1, len(x) * n_train // (n_train + n_test))
    return x[:cut], x[cut:], lines


def save_patch(patch: torch.Tensor, path: str | Path) -> Path:
    """The patch (C, S, S) as a lossless 8-bit PNG."""
    return save_png(from_tensor(patch), path)
