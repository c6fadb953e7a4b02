"""The stabilisers the GAN config can switch on, each against one known difficulty.

:data:`EXPLANATIONS` gives the one line the GAN tab shows as a tooltip (and the CLI in its
help); the rest are the pieces the networks and the trainer use:

- :func:`spectral_norm_all`: Miyato et al. 2018, every weight of D divided by its largest
  singular value (one power iteration per forward pass), so D is 1-Lipschitz per layer;
- :class:`MinibatchStd`: Karras et al. 2018 (ProGAN), one extra feature map holding the
  batch's standard deviation, so D can see a batch of look-alikes;
- :func:`ema_update`: the exponential moving average of G's weights used for sampling
  (Yazıcı et al. 2019; Karras et al. 2018);
- R1 (:func:`advstudio.core.playground.losses.r1_penalty`) and TTUR (:data:`LR_PRESETS`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from advstudio.core.gan.config import GanConfig

EXPLANATIONS = {
    "spectral_norm": "Spectral normalisation (Miyato et al. 2018): caps each layer of D at "
    "Lipschitz constant 1, so D cannot become sharp enough to wipe out G's "
    "gradients or blow up (against a too-strong D and exploding losses).",
    "ttur": "Two time-scale update rule (Heusel et al. 2017): D learns faster than G "
    "(4e-4 vs 1e-4), so D stays near its optimum for the current G (against "
    "oscillation from two players moving at one speed).",
    "r1": "R1 penalty (Mescheder et al. 2018): gamma/2 |grad D(x)|^2 on real images keeps D "
    "flat on the data, which damps the oscillation around equilibrium.",
    "ema": "Average of G's weights over the last steps (decay 0.999 ~ last 1,000 steps) used "
    "for sampling: smooths out the step-to-step wobble of G (against noisy samples "
    "from an oscillating G).",
    "minibatch_std": "Minibatch standard deviation (Karras et al. 2018): D sees how varied "
    "the batch is, so a G producing look-alikes is caught (against mode "
    "collapse).",
}

# learning-rate presets (lr_g, lr_d): the measured default (GanConfig's, see its docstring),
# Radford et al.'s DCGAN and Heusel et al.'s TTUR; and how the GAN tab names them
LR_PRESETS: dict[str, tuple[float, float]] = {
    "default": (GanConfig.lr_g, GanConfig.lr_d),
    "dcgan": (2e-4, 2e-4),
    "ttur": (1e-4, 4e-4),
}
LR_PRESET_NAMES = {"default": "Fast default", "dcgan": "DCGAN", "ttur": "TTUR"}


def spectral_norm_all(net: nn.Module) -> nn.Module:
    """``net`` with spectral normalisation on every convolution and linear weight (in place)."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            spectral_norm(module)
    return net


class MinibatchStd(nn.Module):
    """(N, C, H, W) -> (N, C + 1, H, W): the extra map is the standard deviation of each
    feature over the batch, averaged over features and positions (one number per batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


@torch.no_grad()
def ema_update(average: nn.Module, current: nn.Module, decay: float) -> None:
    """theta_avg <- decay * theta_avg + (1 - decay) * theta for every parameter; buffers
    (BatchNorm's running statistics) are copied, as they are statistics of the current G."""
    avg = [p for p in average.parameters()]
    cur = [p.detach() for p in current.parameters()]
    torch._foreach_lerp_(avg, cur, 1.0 - decay)
    for b_avg, b in zip(average.buffers(), current.buffers()):
        b_avg.copy_(b)
