"""GANs: a plain GAN and a DCGAN, their textbook training job, and sample-quality metrics.

Modules, one job each:

- ``config``: :class:`GanConfig`, the run's settings (no torch import: cheap for the UI);
- ``networks``: generators and discriminators (Radford et al.'s DCGAN, an MLP GAN);
- ``train``: the training step (:class:`GanTrainer`) and the job :func:`train_gan`;
- ``checkpoint``: atomic, ``weights_only``-loadable checkpoints; :func:`load_generator`;
- ``metrics``: Fréchet distance, pairwise diversity, class coverage (pure math);
- ``evaluation``: those metrics on generated images, as a judge reads them;
- ``judge``: the judge, chosen to fit the data (the digit CNN, the user's classifier, none);
- ``sampling``: samples in [0, 1], latent interpolation, image grids.

The names below are importable from this package; torch is only imported when one of them
(other than :class:`GanConfig`) is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from advstudio.core.gan.config import GanConfig

_EXPORTS = {
    "build_networks": "networks",
    "DCGANGenerator": "networks",
    "DCGANDiscriminator": "networks",
    "MLPGenerator": "networks",
    "MLPDiscriminator": "networks",
    "dcgan_init": "networks",
    "train_gan": "train",
    "GanTrainer": "train",
    "GanResult": "train",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_generator": "checkpoint",
    "frechet_distance": "metrics",
    "gaussian_stats": "metrics",
    "pairwise_diversity": "metrics",
    "class_coverage": "metrics",
    "evaluate_digit_generator": "evaluation",
    "evaluate_generator": "evaluation",
    "make_judge": "judge",
    "generate": "sampling",
    "interpolate": "sampling",
    "sample_grid": "sampling",
}

__all__ = ["GanConfig", *_EXPORTS]

if TYPE_CHECKING:
    from advstudio.core.gan.checkpoint import load_checkpoint, load_generator, save_checkpoint
    from advstudio.core.gan.evaluation import evaluate_digit_generator, evaluate_generator
    from advstudio.core.gan.judge import make_judge
    from advstudio.core.gan.metrics import (
        class_coverage,
        frechet_distance,
        gaussian_stats,
        pairwise_diversity,
    )
    from advstudio.core.gan.networks import (
        DCGANDiscriminator,
        DCGANGenerator,
        MLPDiscriminator,
        MLPGenerator,
        build_networks,
        dcgan_init,
    )
    from advstudio.core.gan.sampling import generate, interpolate, sample_grid
    from advstudio.core.gan.train import GanResult, GanTrainer, train_gan


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"advstudio.core.gan.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'advstudio.core.gan' has no attribute {name!r}")
