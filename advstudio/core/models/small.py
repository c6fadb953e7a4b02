"""A small generic CNN for any C×H×W image and any class count: the network to train on a CPU
(colour or grey, any size from 4×4), where a CIFAR ResNet would take hours.

conv 16 - BN - ReLU - max-pool - conv 32 - BN - ReLU - max-pool - conv 64 - BN - ReLU -
adaptive average pool to 2×2 - fc ``num_classes`` (about 25 k parameters at 3 channels and
10 classes). It takes [0, 1] pixels as they are (its card has no mean/std).
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Sequential):
    def __init__(self, channels: int = 3, num_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4, num_classes),
        )
