"""How big is a perturbation, how visible, and did it work: per-image measures for reports.

All functions take clean ``x`` and adversarial ``x_adv`` of the same shape, a batch (N, C, H, W)
(or one (C, H, W) image, treated as a batch of one), pixels in [0, 1], and return one value per
image as a float tensor of shape (N,) on the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advstudio.core.attacks.whitebox import (
    Attack,
    Labels,
    as_labels,
    check_classes,
    check_images,
    eval_mode,
    fgsm,
    fgsm_direction,
)
from advstudio.core.errors import ConfigError

L0_TOLERANCE = 1e-6


def _pair(x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != x_adv.shape:
        raise ConfigError(
            f"clean and adversarial images differ in shape: {tuple(x.shape)} vs "
            f"{tuple(x_adv.shape)}"
        )
    if x.dim() == 3:
        x, x_adv = x.unsqueeze(0), x_adv.unsqueeze(0)
    return x.detach().double(), x_adv.detach().double()


def linf(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Largest absolute change of any pixel value (same scale as eps)."""
    x, x_adv = _pair(x, x_adv)
    return (x_adv - x).abs().flatten(1).amax(1).float()


def l2(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of the perturbation over all pixel values (channels included)."""
    x, x_adv = _pair(x, x_adv)
    return (x_adv - x).flatten(1).norm(dim=1).float()


def l0(x: torch.Tensor, x_adv: torch.Tensor, tol: float = L0_TOLERANCE) -> torch.Tensor:
    """Number of pixel *values* (one per channel) that changed by more than ``tol`` (default
    1e-6, well below one grey level, 1/255 ~ 0.004, so float round-off does not count)."""
    x, x_adv = _pair(x, x_adv)
    return ((x_adv - x).abs() > tol).flatten(1).sum(1).float()


def psnr(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, data range 1: ``10 log10(1 / MSE)``; ``inf`` when equal."""
    x, x_adv = _pair(x, x_adv)
    mse = (x_adv - x).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse)).float()  # 1/0 -> inf


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian (size, size) window, float64."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g /= g.sum()
    return g[:, None] * g[None, :]


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """(n - k + 1, n): row i holds the k weights ``g`` at columns i..i+k-1."""
    k = len(g)
    rows = torch.arange(n - k + 1, device=g.device)[:, None]
    cols = rows + torch.arange(k, device=g.device)
    band = torch.zeros(n - k + 1, n, dtype=g.dtype, device=g.device)
    return band.scatter_(1, cols, g.expand(n - k + 1, k))


def ssim(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), data range 1, the standard settings: Gaussian
    window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03; local statistics over 'valid' window
    positions (as Wang's reference ``ssim_index.m``), population (co)variances, mean over the
    SSIM map and then over channels. Images smaller than the window use a window of their size.
    1 for identical images.

    The Gaussian is separable, so the window sums are two banded matrix products over every
    channel of the five maps at once: a grouped 11x11 float64 convolution took ~1 s on a
    224×224 RGB image on one CPU thread (ten times the forward pass of the ε slider it sits
    beside), the products ~30 ms. Sides over 1,024 pixels use the convolution (memory)."""
    x, x_adv = _pair(x, x_adv)
    size = min(window, x.shape[-2], x.shape[-1])
    n, c, h, w = x.shape
    coords = torch.arange(size, dtype=torch.float64, device=x.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()  # gaussian_window(size, sigma) is the outer product g g^T
    maps = torch.stack([x, x_adv, x * x, x_adv * x_adv, x * x_adv]).reshape(-1, h, w)
    if max(h, w) <= 1024:
        blurred = _band(h, g) @ maps @ _band(w, g).T  # 'valid' window positions
    else:
        blurred = F.conv2d(F.conv2d(maps[:, None], g.view(1, 1, size, 1)), g.view(1, 1, 1, size))[
            :, 0
        ]
    mu_x, mu_y, xx, yy, xy = blurred.reshape(5, n, c, *blurred.shape[-2:])

    c1, c2 = k1**2, k2**2
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    ssim_map = (
        (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    )
    return ssim_map.flatten(2).mean(2).mean(1).float()


@dataclass(frozen=True)
class ImageReport:
    """One row of an attack report. ``target`` is None for untargeted attacks; ``success`` means
    the prediction left the true class (untargeted) or reached ``target`` (targeted)."""

    label: int
    target: int | None
    pred_before: int
    conf_before: float
    pred_after: int
    conf_after: float
    success: bool
    linf: float
    l2: float
    l0: int
    psnr: float
    ssim: float


def attack_report(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: Labels, target: Labels | None = None
) -> list[ImageReport]:
    """Per-image predictions (class, softmax confidence) before and after, success and the
    perturbation measures above. Two forward passes, eval mode, no gradients.

    >>> rows = attack_report(cnn, x, fgsm(cnn, x, y, 0.2), y)
    >>> sum(r.success for r in rows) / len(rows)
    """
    xb, _ = check_images(x)
    xa, _ = check_images(x_adv)
    labels = as_labels(y, len(xb), xb.device)
    targets = None if target is None else as_labels(target, len(xb), xb.device)
    with eval_mode(model), torch.no_grad():
        before = torch.softmax(model(xb).float(), 1)
        after = torch.softmax(model(xa).float(), 1)
    check_classes(labels, before.shape[1], "label")
    if targets is not None:
        check_classes(targets, before.shape[1], "target class")
    conf_b, pred_b = before.max(1)
    conf_a, pred_a = after.max(1)
    success = pred_a == targets if targets is not None else pred_a != labels
    columns = [
        labels,
        pred_b,
        conf_b,
        pred_a,
        conf_a,
        success,
        linf(xb, xa),
        l2(xb, xa),
        l0(xb, xa),
        psnr(xb, xa),
        ssim(xb, xa),
    ]
    rows = zip(*(c.tolist() for c in columns))
    tlist = targets.tolist() if targets is not None else [None] * len(xb)
    return [
        ImageReport(int(lab), t, int(pb), cb, int(pa), ca, bool(s), li, l2v, int(l0v), ps, ss)
        for (lab, pb, cb, pa, ca, s, li, l2v, l0v, ps, ss), t in zip(rows, tlist)
    ]


def minimal_epsilons(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    targeted: bool = False,
    tol: float = 1e-3,
    attack: Attack = fgsm,
    grid: int = 32,
    **attack_kwargs,
) -> list[float | None]:
    """Per image, the smallest eps in [0, 1] (to within ``tol``) at which ``attack`` succeeds:
    0.0 where the clean image is already misclassified (targeted: already the target), None
    where no eps up to 1 works.

    Success is *not* monotone in eps: FGSM at eps 1 turns a digit into a black-and-white sign
    pattern that the CNN may read as the true class again. So this scans eps = 1/grid, 2/grid,
    ..., 1 upwards and bisects below the first success, all images at once. For FGSM the
    gradient sign is computed once and every probe is a forward pass (``grid`` scan steps at
    most, then ``log2(1 / (grid * tol))`` bisection steps); other attacks rerun at every probe.
    The answer is an eps where the attack succeeds, at most ``tol`` above one where it failed.
    """
    if not 0 < tol < 1:
        raise ConfigError(f"tol must be in (0, 1), not {tol:g}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ConfigError(f"grid must be a whole number >= 1, not {grid!r}")
    xb, _ = check_images(x)
    labels = as_labels(y, len(xb), xb.device)
    shape = (-1, *([1] * (xb.dim() - 1)))
    if attack is fgsm and not attack_kwargs:
        direction = fgsm_direction(model, xb, labels, targeted=targeted)

        def adversarial(rows: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            step = eps.to(xb.device, xb.dtype).view(shape) * direction[rows]
            return (xb[rows] + step).clamp(0.0, 1.0)
    else:

        def adversarial(rows: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [
                    attack(
                        model,
                        xb[i : i + 1],
                        labels[i : i + 1],
                        float(e),
                        targeted=targeted,
                        **attack_kwargs,
                    )
                    for i, e in zip(rows.tolist(), eps.tolist())
                ]
            )

    def flipped(rows: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        x_try = adversarial(rows, eps) if bool((eps > 0).any()) else xb[rows]
        with eval_mode(model), torch.no_grad():
            pred = model(x_try).argmax(1)
        hit = pred == labels[rows] if targeted else pred != labels[rows]
        return hit.cpu()

    n = len(xb)
    everyone = torch.arange(n, device=xb.device)
    at_zero = flipped(everyone, torch.zeros(n, dtype=torch.float64))
    hi = torch.where(at_zero, 0.0, math.inf).double()
    for g in torch.arange(1, grid + 1, dtype=torch.float64) / grid:  # coarse scan upwards
        rows = torch.isinf(hi).nonzero()[:, 0]
        if rows.numel() == 0:
            break
        ok = flipped(rows.to(xb.device), g.expand(len(rows)))
        hi[rows[ok]] = g
    found = torch.isfinite(hi) & ~at_zero
    lo = (hi - 1.0 / grid).clamp_min(0.0)
    rows = found.nonzero()[:, 0]
    for _ in range(max(0, math.ceil(math.log2(1.0 / (grid * tol)))) if rows.numel() else 0):
        mid = (lo[rows] + hi[rows]) / 2
        ok = flipped(rows.to(xb.device), mid)
        hi[rows] = torch.where(ok, mid, hi[rows])
        lo[rows] = torch.where(ok, lo[rows], mid)
    return [float(h) if math.isfinite(h) else None for h in hi.tolist()]


def minimal_epsilon(
    model: nn.Module,
    x: torch.Tensor,
    y: Labels,
    *,
    targeted: bool = False,
    tol: float = 1e-3,
    attack: Attack = fgsm,
    grid: int = 32,
    **attack_kwargs,
) -> float | None:
    """:func:`minimal_epsilons` for one image (C, H, W) or a batch of one: the smallest eps in
    [0, 1] that flips it, or None.

    >>> minimal_epsilon(cnn, x[0], int(y[0]))   # e.g. 0.137
    """
    xb, _ = check_images(x)
    if len(xb) != 1:
        raise ConfigError(f"minimal_epsilon takes one image, got {len(xb)}; use minimal_epsilons")
    return minimal_epsilons(
        model, xb, y, targeted=targeted, tol=tol, attack=attack, grid=grid, **attack_kwargs
    )[0]
