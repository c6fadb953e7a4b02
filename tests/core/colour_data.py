"""Synthetic colour data for the data-set tests: 10 classes of coloured shapes, 3×32×32.

Each class is a (colour, shape) pair drawn on a dark background with a little noise, so a
tiny CNN tells them apart and every test builds its set in ``tmp_path`` (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

COLOURS = [(230, 40, 40), (40, 200, 40), (40, 80, 230), (230, 200, 40), (200, 40, 200)]
CLASSES = [
    f"{c}-{s}" for s in ("square", "disc") for c in ("red", "green", "blue", "yellow", "magenta")
]


def shape_image(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """(size, size, 3) uint8: class ``label``'s colour and shape at a random offset."""
    colour, disc = COLOURS[label % 5], label >= 5
    img = rng.integers(0, 30, (size, size, 3)).astype(np.uint8)
    r = size // 4
    cy, cx = rng.integers(r + 1, size - r - 1, 2)
    yy, xx = np.mgrid[:size, :size]
    mask = (
        ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        if disc
        else ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
    )
    img[mask] = colour
    return img


def colour_folder(root: Path, per_class: int = 3, seed: int = 0, junk: bool = True) -> Path:
    """An ImageFolder of :data:`CLASSES`; ``junk`` adds a corrupt PNG and a text file."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(shape_image(label, rng)).save(root / name / f"{i}.png")
    if junk:
        (root / CLASSES[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
        (root / CLASSES[1] / "notes.txt").write_text("not an image")
    return root


class ColourNet(nn.Module):
    """A tiny colour CNN: 3×32×32 -> ``classes`` logits."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def colour_classifier(seed: int = 0):
    """:class:`ColourNet` (random, seeded weights) in the [0, 1] ``Classifier`` wrapper."""
    from advstudio.core.models.classifier import Classifier

    torch.manual_seed(seed)
    return Classifier(ColourNet(), (3, 32, 32), CLASSES, name="colour-net")
