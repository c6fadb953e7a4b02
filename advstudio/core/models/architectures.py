"""Network definitions of the built-in digit classifiers.

Both take *normalised* 1x28x28 input and return logits; the :class:`Classifier` wrapper does the
normalisation, so attacks never see it.
"""

from __future__ import annotations

from torch import nn


class DigitsCNN(nn.Sequential):
    """The PyTorch MNIST example's CNN: conv 32 - conv 64 - max-pool - dropout .25 - fc 128 -
    dropout .5 - fc 10 (1.2 M parameters). The default attack target."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )


class DigitsMLP(nn.Sequential):
    """A fully connected net with BatchNorm (784 - 512 - 256 - 10, 0.54 M parameters): built
    differently from the CNN on purpose, it is the default surrogate for transfer attacks."""

    def __init__(self) -> None:
        super().__init__(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(512, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 10),
        )


ARCHITECTURES: dict[str, type[nn.Module]] = {"digits-cnn": DigitsCNN, "digits-mlp": DigitsMLP}
