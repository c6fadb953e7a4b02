"""Judging a generator: by default with the built-in digit CNN on the digits; any judge of
:mod:`advstudio.core.gan.judge` through :func:`evaluate_generator`.

Three numbers on ``EVAL_SAMPLES`` (1,000) samples drawn from a fixed noise batch:

- ``classes_covered``: digits that make up at least 2 % of the samples (10 = all; a collapsed
  generator covers 1 or 2);
- ``class_entropy``: entropy of the predicted-class histogram in nats (max ln 10 = 2.30);
- ``frechet``: Fréchet distance between Gaussians fitted to the CNN's 128-d penultimate features
  of the samples and of the 1,000 bundled test digits (lower is better; real training digits
  score about 25 against the test digits, an untrained DCGAN about 2,700).

A conditional generator is asked for each class in turn (``EVAL_SAMPLES / num_classes`` samples
each): ``class_acc_<k>`` is the share of the samples requested as class k that the judge reads as
k, ``class_accuracy`` their mean, and ``classes_covered`` counts the classes whose samples are
read as requested at least half the time (:data:`CLASS_HIT`); entropy and Fréchet distance are
those of the balanced mix.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from advstudio.core.data import load_digits
from advstudio.core.gan.metrics import (
    class_coverage,
    frechet_distance,
    gaussian_stats,
    pairwise_diversity,
)
from advstudio.core.gan.sampling import generate
from advstudio.core.models.classifier import Classifier
from advstudio.core.models.registry import load_builtin

EVAL_SAMPLES = 1000
COVERAGE_THRESHOLD = 0.02
JUDGE = "digits-cnn"
CLASS_HIT = 0.5  # a requested class counts as covered when at least this share is judged as it


@lru_cache(maxsize=2)
def judge(device: str = "cpu") -> Classifier:
    """The built-in digit CNN in eval mode (loaded once per device)."""
    return load_builtin(JUDGE, device)


@torch.no_grad()
def features_and_logits(
    images01: torch.Tensor, device: str = "cpu", batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's penultimate features (N, 128) and logits (N, 10) of [0, 1] images, on the CPU."""
    clf = judge(str(device))
    layers = list(clf.net.children())
    feats, logits = [], []
    for chunk in images01.split(batch_size):
        # what models.classifier.penultimate_features computes; slicing the net there rebuilds
        # it through its class, which DigitsCNN's argument-free __init__ does not allow
        h = clf.prepare(chunk.to(clf.device))
        h = (h - clf.mean) / clf.std
        for layer in layers[:-1]:
            h = layer(h)
        h = h.flatten(1)
        feats.append(h.cpu())
        logits.append(layers[-1](h).cpu())
    return torch.cat(feats), torch.cat(logits)


@lru_cache(maxsize=1)
def real_digit_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the judge's features of the bundled test digits (cached)."""
    x, _ = load_digits("test")
    feats, _ = features_and_logits(x)
    return gaussian_stats(feats)


def frechet_to_test_digits(images01: torch.Tensor, device: str = "cpu") -> float:
    """Fréchet distance of [0, 1] images to the bundled test digits, in the judge's features."""
    feats, _ = features_and_logits(images01, device)
    return frechet_distance(*gaussian_stats(feats), *real_digit_stats())


def evaluate_digit_generator(
    generator: nn.Module,
    latent_dim: int,
    seed: int = 0,
    n: int = EVAL_SAMPLES,
    device: str = "cpu",
    num_classes: int = 0,
) -> dict[str, float]:
    """:func:`evaluate_generator` with the built-in digit CNN against the bundled test digits."""
    from advstudio.core.gan.judge import Judge

    return evaluate_generator(
        generator, latent_dim, Judge(JUDGE, JUDGE, judge(str(device))), seed, n, num_classes
    )


def evaluate_generator(
    generator: nn.Module,
    latent_dim: int,
    judge,
    seed: int = 0,
    n: int = EVAL_SAMPLES,
    num_classes: int = 0,
) -> dict[str, float]:
    """``classes_covered``, ``class_entropy``, ``frechet`` and ``sample_diversity`` (mean pairwise
    L2 distance in [0, 1] pixels) of ``n`` samples from noise seeded with ``seed``, as
    ``judge`` (a :class:`~advstudio.core.gan.judge.Judge`) reads them; for a conditional
    generator (``num_classes`` > 0) per requested class (see the module doc). With K classes
    a class is covered when it holds at least a fifth of its fair share, 0.2 / K of the samples
    (2 % for 10).

    Does not touch the global RNG or the generator's state (samples in eval mode).
    """
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    asked = torch.arange(n) * num_classes // n if num_classes else None  # balanced classes
    images = generate(generator, z, labels=asked)
    feats, logits = judge.features_and_logits(images)
    frechet = frechet_distance(*gaussian_stats(feats), *judge.real_stats())
    if getattr(judge, "features_only", False):  # its classes are not the data set's
        return {"frechet": frechet, "sample_diversity": pairwise_diversity(images)}
    k = logits.shape[1]
    covered, entropy = class_coverage(logits, num_classes=k, threshold=COVERAGE_THRESHOLD * 10 / k)
    values = {
        "classes_covered": float(covered),
        "class_entropy": entropy + 0.0,  # no -0.0 in the records
        "frechet": frechet,
        "sample_diversity": pairwise_diversity(images),
    }
    if asked is not None:
        hit = (logits.argmax(dim=1) == asked).float()
        accuracy = [float(hit[asked == k].mean()) for k in range(num_classes)]
        values["classes_covered"] = float(sum(a >= CLASS_HIT for a in accuracy))
        values["class_accuracy"] = sum(accuracy) / num_classes
        values.update({f"class_acc_{k}": a for k, a in enumerate(accuracy)})
    return values
