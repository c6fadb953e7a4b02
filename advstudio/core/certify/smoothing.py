"""Randomised smoothing (Cohen, Rosenfeld and Kolter 2019, arXiv:1902.02918): a certified L2
radius from Monte-Carlo counts.

The smoothed classifier ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ N(0, sigma^2 I)``, keeps its
prediction on the whole L2 ball of radius ``sigma * Phi^-1(p_A)`` around ``x`` when the top
class has probability at least ``p_A`` (Theorem 1, the two-class form). ``f`` is any base
classifier; here the model as given (an advstudio ``Classifier`` clamps its input to [0, 1] in
``prepare``: that clamp is part of ``f``, which the theorem allows). The noise itself is added in
pixel space and *not* clipped, as in the paper.

- :func:`certify` is the paper's CERTIFY: ``n0`` samples pick the top class, ``n`` fresh samples
  bound its probability from below (one-sided Clopper-Pearson at level ``1 - alpha``), abstain
  when that bound is not above 1/2. With probability >= 1 - alpha over the noise, a returned
  class and radius are right.
- :func:`predict` is the paper's PREDICT: the top two counts of ``n`` samples and a two-sided
  binomial test at ``alpha``; abstains unless the top class wins significantly.
- :func:`certify_images` runs CERTIFY over a batch of images as a job (progress per image).

Units: pixels in [0, 1], ``sigma`` and radii in the same scale, L2 over all pixel values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.stats import beta, binomtest, norm
from torch import nn

from advstudio.core import validate as v
from advstudio.core.attacks.whitebox import eval_mode
from advstudio.core.jobs import Job, Metrics, Progress

ABSTAIN = -1
"""The class :func:`certify` and :func:`predict` return when they abstain."""


@dataclass(frozen=True)
class Smoothing:
    """The settings of one smoothed classifier and its Monte-Carlo estimates.

    ``sigma``: noise standard deviation (pixel scale). ``n0``: samples that select the class;
    ``n``: samples that estimate its probability; ``alpha``: the failure probability.
    ``batch_size``: noisy copies per forward pass of the base classifier (memory, not maths).
    """

    sigma: float = 0.25
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    batch_size: int = 400

    def __post_init__(self) -> None:
        v.number("sigma", self.sigma, above=0)
        v.whole("n0", self.n0, 1)
        v.whole("n", self.n, 1)
        v.number("alpha", self.alpha, above=0, below=0.5)
        v.whole("batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer for one image: the class (``ABSTAIN`` = -1), the lower confidence
    bound on its probability and the certified L2 radius (0 when abstaining)."""

    prediction: int
    p_lower: float
    radius: float

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound on a binomial proportion from ``k``
    successes in ``n`` trials (Clopper and Pearson 1934): the ``alpha`` quantile of
    Beta(k, n - k + 1), 0 when k = 0. Equal to the lower end of the exact two-sided interval at
    confidence ``1 - 2 alpha``, which is how the paper's code computes it."""
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``x + sigma * N(0, 1)`` per pixel, unclipped: what the smoothed classifier feeds its base
    classifier, and the ``"noise"`` training recipe's input (Cohen et al. train the base
    classifier on the noise it is certified under). Drawn on ``x``'s device from
    ``generator`` (which must live there)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


def sample_counts(
    model: nn.Module,
    x: torch.Tensor,
    num: int,
    sigma: float,
    batch_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """How often the base classifier picks each class on ``num`` noisy copies of one image
    ``x`` (C, H, W): an int64 tensor (classes,) on the CPU. Noise ``N(0, sigma^2)`` per pixel,
    drawn on ``x``'s device from ``generator`` (which must live there), unclipped. Call under
    ``torch.no_grad`` in eval mode (:func:`certify` does)."""
    counts: torch.Tensor | None = None
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        noise = torch.randn((b, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        logits = model(x.unsqueeze(0) + sigma * noise)
        found = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
        counts = found if counts is None else counts + found
    assert counts is not None  # num >= 1
    return counts.cpu()


@torch.no_grad()
def certify(
    model: nn.Module, x: torch.Tensor, smoothing: Smoothing, generator: torch.Generator
) -> Certificate:
    """CERTIFY (Cohen et al. 2019, Algorithm "certify") for one image ``x`` (C, H, W) in [0, 1]:
    the top class of ``n0`` samples, then ``p_A >= clopper_pearson_lower(n_A, n, alpha)`` from
    ``n`` fresh samples and radius ``sigma * Phi^-1(p_A)``; abstain when ``p_A <= 1/2``."""
    s = smoothing
    with eval_mode(model):
        selection = sample_counts(model, x, s.n0, s.sigma, s.batch_size, generator)
        top = int(selection.argmax())
        counts = sample_counts(model, x, s.n, s.sigma, s.batch_size, generator)
    p_lower = clopper_pearson_lower(int(counts[top]), s.n, s.alpha)
    if p_lower <= 0.5:
        return Certificate(ABSTAIN, p_lower, 0.0)
    return Certificate(top, p_lower, s.sigma * float(norm.ppf(p_lower)))


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, smoothing: Smoothing, generator: torch.Generator
) -> int:
    """PREDICT (Cohen et al. 2019): the smoothed class of one image ``x`` (C, H, W) from ``n``
    samples, or ``ABSTAIN`` unless the two-sided binomial test of the top count against the
    runner-up's (``n_A`` of ``n_A + n_B`` at p = 1/2) rejects at ``alpha``. A returned class is
    wrong with probability at most ``alpha``."""
    s = smoothing
    with eval_mode(model):
        counts = sample_counts(model, x, s.n, s.sigma, s.batch_size, generator)
    top2 = counts.topk(min(2, len(counts)))
    n_a = int(top2.values[0])
    n_b = int(top2.values[1]) if len(top2.values) > 1 else 0
    if binomtest(n_a, n_a + n_b, 0.5).pvalue > s.alpha:
        return ABSTAIN
    return int(top2.indices[0])


def certify_images(
    model: nn.Module, x: torch.Tensor, smoothing: Smoothing, generator: torch.Generator
) -> Job[list[Certificate]]:
    """:func:`certify` over images ``x`` (N, C, H, W), one after another from one generator,
    as a job: after each image (``n0 + n`` forward passes, the unit a user waits for) a
    :class:`~advstudio.core.jobs.Metrics` with its ``prediction``, ``p_lower`` and ``radius``
    and a :class:`~advstudio.core.jobs.Progress`."""
    certificates: list[Certificate] = []
    yield Progress(0, len(x), "certifying")
    for i, image in enumerate(x):
        c = certify(model, image, smoothing, generator)
        certificates.append(c)
        yield Metrics(
            i, {"prediction": float(c.prediction), "p_lower": c.p_lower, "radius": c.radius}
        )
        yield Progress(i + 1, len(x), "certifying")
    return certificates


def largest_radius(smoothing: Smoothing) -> float:
    """The radius CERTIFY gives when all ``n`` samples agree: ``sigma * Phi^-1(alpha^(1/n))``
    (the Clopper-Pearson bound at k = n). No image can be certified further at this ``n``, so
    a certified-accuracy curve drops to 0 beyond it whatever the model (2.46 sigma at
    n = 1,000 and alpha = 0.001; 3.8 sigma at n = 100,000)."""
    return smoothing.sigma * float(norm.ppf(smoothing.alpha ** (1.0 / smoothing.n)))


def certified_accuracy(labels: list[int], certificates: list[Certificate], radius: float) -> float:
    """Share of images whose certified class is the label with radius >= ``radius`` (the
    paper's "approximate certified test set accuracy"; abstentions count as wrong)."""
    if not labels:
        raise ValueError("certified accuracy of no images")
    hits = sum(c.prediction == y and c.radius >= radius for y, c in zip(labels, certificates))
    return hits / len(labels)
