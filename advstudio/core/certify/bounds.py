"""Upper bounds for the smoothed classifier: the smallest L2 perturbation ``smooth_pgd`` finds
(Salman et al. 2019) that changes randomised smoothing's prediction, beside the certified
radius (Cohen et al. 2019, the lower bound): the true distance to the boundary lies between.

A perturbation counts as found at radius ``eps`` when PREDICT (:func:`.smoothing.predict`, its
own ``n`` fresh samples) on the attacked image no longer returns the label; an abstention counts
as a change, as in the papers' empirical accuracies. The search walks an increasing grid of
radii, so the found size is within one grid step of the attack's true best; each image stops at
its first success. Pixels in [0, 1], radii L2 over all pixel values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advstudio.core import validate as v
from advstudio.core.certify.smooth_attack import smooth_pgd
from advstudio.core.certify.smoothing import Smoothing, predict
from advstudio.core.jobs import Job, Progress


@dataclass(frozen=True)
class SmoothAttack:
    """``radii``: the L2 radii tried, increasing. ``steps``: PGD steps per radius, of length
    ``2 * eps / steps`` (the walk can reach the sphere and move along it). ``samples``: noise
    draws per gradient (Salman et al. use 1 to 128; 32 here keeps a step one forward pass of
    32 images per image)."""

    radii: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
    steps: int = 20
    samples: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.radii, str) or not self.radii:
            v.fail("smooth_pgd_radii", "a non-empty list of L2 radii > 0", self.radii)
        for r in self.radii:
            v.number("smooth_pgd_radii", r, above=0)
        if list(self.radii) != sorted(self.radii):
            v.fail("smooth_pgd_radii", "radii in increasing order", self.radii)
        v.whole("smooth_pgd_steps", self.steps, 1)
        v.whole("smooth_pgd_samples", self.samples, 1)


def smooth_pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    smoothing: Smoothing,
    attack: SmoothAttack,
    generator: torch.Generator,
    wrong: list[bool],
) -> Job[list[float | None]]:
    """Per image of ``x`` (N, C, H, W) with labels ``y``: the L2 size of the first
    ``smooth_pgd`` perturbation on the grid that changes PREDICT's answer from the label,
    ``None`` when no radius of the grid does, 0 where ``wrong`` says the smoothed classifier is
    already wrong on the clean image (those are not attacked). A job: a Progress per radius."""
    found: list[float | None] = [0.0 if w else None for w in wrong]
    yield Progress(0, len(attack.radii), "smooth PGD on the smoothed classifier")
    for k, eps in enumerate(attack.radii):
        todo = [i for i, f in enumerate(found) if f is None]
        if todo:
            xb, yb = x[todo], y[todo]
            x_adv = smooth_pgd(
                model,
                xb,
                yb,
                eps,
                alpha=2 * eps / attack.steps,
                steps=attack.steps,
                sigma=smoothing.sigma,
                samples=attack.samples,
                generator=generator,
            )
            sizes = (x_adv - xb).flatten(1).norm(dim=1).tolist()
            for j, i in enumerate(todo):
                if predict(model, x_adv[j], smoothing, generator) != int(y[i]):
                    found[i] = sizes[j]
        yield Progress(k + 1, len(attack.radii), f"smooth PGD at L2 {eps:g}")
    return found


def empirical_accuracy(
    labels: list[int], predictions: list[int], found: list[float | None], radius: float
) -> float:
    """Share of images the smoothed classifier gets right (``predictions``: CERTIFY's, an
    abstention is wrong) and on which no perturbation of L2 size <= ``radius`` was found: an
    upper bound on the smoothed classifier's robust accuracy at ``radius`` (valid up to the
    largest radius searched)."""
    if not labels:
        raise ValueError("empirical accuracy of no images")
    hits = sum(p == y and (f is None or f > radius) for y, p, f in zip(labels, predictions, found))
    return hits / len(labels)
