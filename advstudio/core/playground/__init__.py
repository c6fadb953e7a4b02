"""The GAN playground: a small MLP GAN on 2-D points, trained step by step or live, with the
measures that make its failures visible (modes covered, sample quality, collapse, oscillation).

``targets`` (the distributions), ``model`` (networks, losses, steps, snapshots), ``metrics``
(coverage and warnings), ``job`` (the training job and its live parameters). Pure PyTorch.
"""

from advstudio.core.playground.job import LiveParams, PlaygroundSummary, run_playground
from advstudio.core.playground.metrics import Coverage, Diagnostics, coverage
from advstudio.core.playground.model import (
    LOSSES,
    OPTIMISERS,
    Playground,
    PlaygroundConfig,
    PlaygroundParams,
    Snapshot,
)
from advstudio.core.playground.targets import TARGET_NAMES, VIEW, Target, make_target

__all__ = [
    "LOSSES",
    "OPTIMISERS",
    "TARGET_NAMES",
    "VIEW",
    "Coverage",
    "Diagnostics",
    "LiveParams",
    "Playground",
    "PlaygroundConfig",
    "PlaygroundParams",
    "PlaygroundSummary",
    "Snapshot",
    "Target",
    "coverage",
    "make_target",
    "run_playground",
]
