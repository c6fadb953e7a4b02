"""Input-transform defences, the gradient masking they cause, and BPDA, which undoes it.

A transform maps a batch of images in [0, 1] (N, C, H, W) to images in [0, 1] of the same shape:

- :class:`JpegCompression`: re-encode each image as an 8-bit JPEG with Pillow and decode it
  (Dziugaite et al. 2016, Guo et al. 2018). Runs outside autograd: no input gradient at all.
- :class:`BitDepth`: keep ``bits`` bits per pixel, ``round(x (2^b - 1)) / (2^b - 1)``
  (Xu et al. 2018, "Feature Squeezing", arXiv:1704.01155). Piecewise constant: gradient zero.
- :class:`MedianSmoothing`: the median of each ``window`` x ``window`` neighbourhood, per
  channel (Xu et al. 2018). Differentiable almost everywhere: it masks little.
- :class:`RandomResizePad` and :class:`GaussianNoise`: *randomised* defences (Xie et al. 2018,
  arXiv:1711.01991; noise as in Cohen et al. 2019's smoothing, one draw). Differentiable, but
  each forward pass draws anew, so one gradient is a noisy sample; Expectation over
  Transformation (:mod:`~advstudio.core.attacks.eot`) averages them. They draw from torch's
  global generator, so ``torch.manual_seed`` (or EoT's ``seed``) makes them reproducible.

:func:`defended` puts a transform in front of a classifier. In plain mode an attacker that
differentiates the whole pipeline gets a zero (bit depth) or absent (JPEG) input gradient, so
gradient attacks stall or refuse to run: *gradient masking*, not robustness. With ``bpda=True``
the backward pass treats the transform as the identity (Backward Pass Differentiable
Approximation, Athalye et al. 2018, arXiv:1802.00420): the forward pass is unchanged, and the
same attacks succeed again.

:class:`FeatureSqueezingDetector` (Xu et al. 2018) flags inputs whose prediction moves a lot when
squeezed: score = max over squeezers of ``|| softmax f(x) - softmax f(squeeze(x)) ||_1``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from advstudio.core.attacks.whitebox import check_images, eval_mode
from advstudio.core.errors import ConfigError
from advstudio.core.models.classifier import Classifier

Transform = Callable[[torch.Tensor], torch.Tensor]


def _whole(value: object, name: str, lo: int, hi: int | None, hint: str = "") -> int:
    """``value`` as an int in [lo, hi] (hi None: unbounded), else a ConfigError naming the range."""
    allowed = f"a whole number from {lo} to {hi}" if hi is not None else f"a whole number >= {lo}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be {allowed}{hint}, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ConfigError(f"{name} must be {allowed}{hint}, not {value}")
    return int(value)


# --------------------------------------------------------------------------- transforms


class BitDepth(nn.Module):
    """Colour-depth reduction to ``bits`` bits per channel (1 to 8): ``round(x L) / L`` with
    ``L = 2^bits - 1`` levels above zero. ``bits=1`` binarises at 0.5; ``bits=8`` is the 1/255
    grid of an 8-bit image file. Ties round half to even (``torch.round``)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = _whole(bits, "bits", 1, 8)
        self.levels = 2**self.bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class MedianSmoothing(nn.Module):
    """Median of each ``window`` x ``window`` neighbourhood, per image and channel.

    ``window`` is a whole number >= 1 (1 = identity; Xu et al. use 2 for digits and 2 or 3 for
    colour images). Like ``scipy.ndimage.median_filter`` (what Xu et al. ran): an even window
    covers ``window // 2`` pixels before the centre and ``window // 2 - 1`` after it, and its
    median is the upper of the two middle values. Borders are padded by repeating the edge
    pixel, which for windows up to 3 is the same as scipy's default ``'reflect'`` mode.
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = _whole(
            window,
            "median window",
            1,
            None,
            " (Xu et al. use 2 or 3; 1 leaves the image unchanged)",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.window
        if k == 1:
            return x
        before, after = k // 2, (k - 1) // 2
        padded = nn.functional.pad(x, (before, after, before, after), mode="replicate")
        patches = padded.unfold(2, k, 1).unfold(3, k, 1).flatten(-2)  # (N, C, H, W, k*k)
        return patches.sort(dim=-1).values[..., (k * k) // 2]

    def extra_repr(self) -> str:
        return f"window={self.window}"


class JpegCompression(nn.Module):
    """Save each image as a JPEG of ``quality`` (1 to 100) with Pillow and load it back.

    Pixels go through an 8-bit round trip (``round(255 x)``), as in a real file. Gray (C=1) is
    encoded as a one-channel JPEG, colour (C=3) with Pillow's defaults (4:2:0 chroma
    subsampling, standard tables). Runs on the CPU outside autograd and returns a tensor on
    ``x``'s device and dtype that carries no gradient.
    """

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        self.quality = _whole(quality, "JPEG quality", 1, 100)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(
                f"JPEG takes (N, C, H, W) images with 1 (gray) or 3 (RGB) "
                f"channels, not shape {tuple(x.shape)}"
            )
        arr = np.rint(x.detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
        out = np.empty_like(arr)
        for i, img in enumerate(arr):
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=self.quality)
            buf.seek(0)
            with Image.open(buf) as decoded:
                back = np.asarray(decoded.convert(pil.mode))
            out[i] = back[None] if back.ndim == 2 else back.transpose(2, 0, 1)
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype) / 255


class RandomResizePad(nn.Module):
    """Random resizing and padding (Xie et al. 2018, "Mitigating adversarial effects through
    randomization", arXiv:1711.01991), kept to the input's size: each call shrinks the whole
    batch (bilinear) to a side drawn uniformly from ``H - shrink`` to ``H`` pixels (likewise the
    width), then zero-pads it back to H x W at a random offset. ``shrink`` (pixels, default 4:
    sides 24 to 28 on a digit) plays the paper's 299 -> [299, 331) enlargement; the paper
    enlarges, which would change the classifier's input size."""

    def __init__(self, shrink: int = 4) -> None:
        super().__init__()
        self.shrink = _whole(shrink, "shrink", 0, None, " (pixels)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        rows = int(torch.randint(max(h - self.shrink, 1), h + 1, ()))
        cols = int(torch.randint(max(w - self.shrink, 1), w + 1, ()))
        top = int(torch.randint(0, h - rows + 1, ()))
        left = int(torch.randint(0, w - cols + 1, ()))
        small = nn.functional.interpolate(
            x, size=(rows, cols), mode="bilinear", align_corners=False
        )
        return nn.functional.pad(small, (left, w - cols - left, top, h - rows - top))

    def extra_repr(self) -> str:
        return f"shrink={self.shrink}"


class GaussianNoise(nn.Module):
    """``clip(x + sigma * n, 0, 1)`` with fresh ``n ~ N(0, I)`` on every call. ``sigma``: on the
    pixel scale [0, 1] (default 0.25, the middle noise level of Cohen et al. 2019)."""

    def __init__(self, sigma: float = 0.25) -> None:
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma <= 1:
            raise ConfigError(f"noise sigma must be a number in [0, 1] (pixels), not {sigma!r}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


RANDOM_TRANSFORMS = (RandomResizePad, GaussianNoise)
"""The transforms that draw anew on each call: attack them with EoT."""


# --------------------------------------------------------------------------- defended model


def _identity_backward(transform: Transform, x: torch.Tensor) -> torch.Tensor:
    """``transform(x)`` forward, identity backward: ``x + (t(x) - x).detach()`` (BPDA with
    g(x) = x, the straight-through estimator)."""
    return x + (transform(x) - x).detach()


class Defended(nn.Module):
    """``classifier(transform(x))``: a classifier behind an input-transform defence.

    Same interface as :class:`~advstudio.core.models.classifier.Classifier` (``forward`` /
    ``logits`` on [0, 1] images, ``predict``, ``class_names``, ``input_shape``, ``name``,
    ``num_classes``, ``device``, ``prepare``), so every attack and report takes it. The transform
    is applied to the image as given, before the classifier's own resize and normalisation.

    ``bpda=False``: gradients are whatever autograd makes of the transform: zero through
    :class:`BitDepth`, none at all through :class:`JpegCompression` (white-box attacks then
    raise :class:`~advstudio.core.errors.AttackError`). ``bpda=True``: the backward pass skips
    the transform (identity), which is how Athalye et al. broke these defences.
    """

    def __init__(self, classifier: nn.Module, transform: Transform, bpda: bool = False) -> None:
        super().__init__()
        if not callable(transform):
            raise ConfigError(
                f"transform must be callable (images -> images), not {type(transform).__name__}"
            )
        self.classifier = classifier
        self.transform = transform
        self.bpda = bool(bpda)
        # a new Module is in training mode; take the classifier's own mode instead, or
        # predict() (which restores the wrapper's mode) would switch the classifier to train
        self.training = bool(getattr(classifier, "training", False))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        if self.bpda:
            return self.classifier(_identity_backward(self.transform, x01))
        return self.classifier(self.transform(x01))

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self(x01)

    def prepare(self, x01: torch.Tensor) -> torch.Tensor:
        """The image as the network sees it: transformed, then the classifier's geometry."""
        x = self.transform(x01 if x01.dim() == 4 else x01.unsqueeze(0))
        prepare = getattr(self.classifier, "prepare", None)
        return prepare(x) if prepare is not None else x

    @property
    def class_names(self) -> list[str]:
        names = getattr(self.classifier, "class_names", None)
        return list(names) if names is not None else []

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return getattr(self.classifier, "input_shape", None)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def name(self) -> str:
        mode = ", BPDA" if self.bpda else ""
        return f"{getattr(self.classifier, 'name', 'model')} + {self.transform}{mode}"

    @property
    def device(self) -> torch.device:
        device = getattr(self.classifier, "device", None)
        if isinstance(device, torch.device):
            return device
        return next(self.classifier.parameters(), torch.empty(0)).device

    # Classifier.predict only uses eval/train, __call__, device and class_names: share it.
    predict = Classifier.predict

    def extra_repr(self) -> str:
        return f"bpda={self.bpda}"


def defended(classifier: nn.Module, transform: Transform, bpda: bool = False) -> Defended:
    """``classifier`` behind ``transform``; ``bpda=True`` for the straight-through backward pass.

    >>> shielded = defended(cnn, BitDepth(2))
    >>> pgd(shielded, x, y, 0.3, alpha=0.03, steps=20)          # gradient zero: barely moves
    >>> pgd(defended(cnn, BitDepth(2), bpda=True), x, y, 0.3, alpha=0.03, steps=20)   # works
    """
    return Defended(classifier, transform, bpda)


# --------------------------------------------------------------------------- detector


def check_rate(rate: float, name: str = "false_alarm_rate") -> float:
    """A rate strictly between 0 and 1, else :class:`ConfigError`."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 1), e.g. 0.05, not {rate!r}") from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must be in (0, 1) (exclusive), e.g. 0.05, not {value:g}")
    return value


def squeezers_for(channels: int) -> tuple[Transform, ...]:
    """Xu et al.'s squeezers for the images' colour: 1-bit depth and a 2x2 median for grey
    (their MNIST pair); 5-bit depth and a 2x2 median for colour (their CIFAR-10 set, without
    the non-local-means filter)."""
    return (BitDepth(1 if channels == 1 else 5), MedianSmoothing(2))


class FeatureSqueezingDetector:
    """Feature squeezing (Xu et al. 2018, arXiv:1704.01155): an input is flagged when squeezing
    it changes the model's softmax by more than a threshold.

    ``score(x) = max_s || softmax f(x) - softmax f(s(x)) ||_1`` over the ``squeezers`` (values in
    [0, 2]). The defaults are the paper's MNIST pair, 1-bit depth and a 2x2 median; for colour
    images they use 5-bit depth, 2x2 median and a non-local-means filter. Call
    :meth:`fit_threshold` on clean images first; :meth:`detect` is ``score > threshold``.

    >>> det = FeatureSqueezingDetector(cnn)
    >>> det.fit_threshold(x_clean, false_alarm_rate=0.05)
    >>> det.detect(pgd(cnn, x, y, 0.2, alpha=0.02, steps=20)).float().mean()   # detection rate
    """

    def __init__(
        self,
        classifier: nn.Module,
        squeezers: Sequence[Transform] = (BitDepth(1), MedianSmoothing(2)),
        batch_size: int = 256,
    ) -> None:
        squeezers = tuple(squeezers)
        if not squeezers or not all(callable(s) for s in squeezers):
            raise ConfigError(
                "squeezers must be one or more transforms (images -> images), "
                "e.g. (BitDepth(1), MedianSmoothing(2))"
            )
        self.classifier = classifier
        self.squeezers = squeezers
        self.batch_size = _whole(batch_size, "batch_size", 1, None)
        self.threshold: float | None = None

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The L1 score (N,) in [0, 2], float32 on ``x``'s device; eval mode, no gradients."""
        xb, single = check_images(x)
        out = []
        with eval_mode(self.classifier):
            for start in range(0, len(xb), self.batch_size):
                chunk = xb[start : start + self.batch_size]
                p = torch.softmax(self.classifier(chunk).float(), dim=1)
                dist = [
                    (p - torch.softmax(self.classifier(s(chunk)).float(), dim=1)).abs().sum(1)
                    for s in self.squeezers
                ]
                out.append(torch.stack(dist).amax(0))
        scores = torch.cat(out)
        return scores[0] if single else scores

    def fit_threshold(self, clean_x: torch.Tensor, false_alarm_rate: float = 0.05) -> float:
        """Set the threshold to the ``1 - false_alarm_rate`` quantile of the clean scores, so
        about that share of clean images is flagged (fewer when scores tie). Returns it."""
        rate = check_rate(false_alarm_rate)
        scores = self.score(clean_x).reshape(-1).double()
        self.threshold = float(torch.quantile(scores, 1.0 - rate))
        return self.threshold

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Bool (N,): ``score > threshold``, i.e. flagged as adversarial."""
        if self.threshold is None:
            raise ConfigError(
                "the detector has no threshold yet: call fit_threshold(clean "
                "images, false_alarm_rate) first, or set .threshold"
            )
        return self.score(x) > self.threshold


TRANSFORMS: dict[str, Callable[..., nn.Module]] = {
    "jpeg": JpegCompression,
    "bit_depth": BitDepth,
    "median": MedianSmoothing,
    "resize_pad": RandomResizePad,
    "noise": lambda percent: GaussianNoise(percent / 100),
}
"""Per defence key, the transform of its whole-number parameter (noise: sigma in percent)."""
