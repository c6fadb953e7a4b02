"""CIFAR-style networks (3×32×32 input), with RobustBench's module names so its checkpoints and
most research code's state_dicts load as they are.

- :class:`PreActResNet18`: pre-activation ResNet-18 (He et al. 2016), the "fast adversarial
  training" baseline; ``bn_before_fc`` adds the final BatchNorm some checkpoints have.
- :class:`CifarResNet18`: ResNet-18 with the 3×3 stride-1 CIFAR stem and no max-pool
  (kuangliu/pytorch-cifar), not torchvision's 7×7 ImageNet stem.
- :class:`WideResNet`: WRN-depth-k (Zagoruyko & Komodakis 2016) as in TRADES / RobustBench;
  WRN-28-10 and WRN-34-10 are the usual robust CIFAR models.

Each takes the pixels as its checkpoint was trained on (RobustBench's take [0, 1]); the card
says whether a mean/std applies. Output: (N, num_classes) logits. Pooling is adaptive, so other
input sizes run too (they are just not what the weights were trained on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3(cin, cout, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv3(cout, cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _stages(block: type[nn.Module], counts: tuple[int, ...]) -> list[nn.Sequential]:
    stages, cin = [], 64
    for i, n in enumerate(counts):
        cout = 64 * 2**i
        layers = []
        for j in range(n):
            layers.append(block(cin, cout, 2 if (j == 0 and i > 0) else 1))
            cin = cout
        stages.append(nn.Sequential(*layers))
    return stages


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 for 3×32×32 (11.2 M parameters)."""

    def __init__(self, num_classes: int = 10, bn_before_fc: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv3(3, 64)
        self.layer1, self.layer2, self.layer3, self.layer4 = _stages(PreActBlock, (2, 2, 2, 2))
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if hasattr(self, "bn"):
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class CifarResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool; 11.2 M parameters)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(3, 64), nn.BatchNorm2d(64)
        self.layer1, self.layer2, self.layer3, self.layer4 = _stages(BasicBlock, (2, 2, 2, 2))
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    """TRADES' wide basic block: BN-ReLU first, a 1×1 ``convShortcut`` when widths differ."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = _conv3(cin, cout, stride)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2 = _conv3(cout, cout)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.equal else self.convShortcut(pre))


class NetworkBlock(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen`` (depth = 6n + 4); WRN-28-10 has 36.5 M parameters."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WideResNet's depth must be 6n + 4, not {depth}")
        n, widths = (depth - 4) // 6, (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = _conv3(3, widths[0])
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1, self.relu = nn.BatchNorm2d(widths[3]), nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1).flatten(1))
