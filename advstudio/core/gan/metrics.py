"""Sample-quality measures for generators: Fréchet distance, diversity, class coverage.

Pure math on arrays; :mod:`advstudio.core.gan.evaluation` applies them with the built-in digit
classifier.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_float64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of an (N, D) feature matrix, in float64.

    The covariance uses N - 1 in the denominator (``np.cov``), as the FID reference code does.
    """
    f = _as_float64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N, D) feature matrix with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    In feature units squared. The trace of the matrix square root is computed as
    ``tr((s1^(1/2) s2 s1^(1/2))^(1/2))``, a symmetric PSD matrix with the same eigenvalues as
    ``s1 s2``, so only symmetric eigendecompositions are needed (no scipy ``sqrtm``). Tiny negative
    eigenvalues from rounding are clipped to 0.
    """
    mu1, mu2 = np.atleast_1d(_as_float64(mu1)), np.atleast_1d(_as_float64(mu2))
    s1, s2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, sigma1 {s1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {s2.shape}"
        )
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def pairwise_distance_mean(samples: torch.Tensor) -> torch.Tensor:
    """Mean L2 distance over all pairs of distinct samples (a 0-d tensor; no sync with the device).

    ``samples`` (N, ...) are flattened per sample. Fewer than 2 samples give 0.
    """
    flat = samples.detach().reshape(samples.shape[0], -1).float()
    if flat.shape[0] < 2:
        return flat.new_zeros(())
    return torch.pdist(flat).mean()


def pairwise_diversity(samples) -> float:
    """Mean pairwise L2 distance of samples (N, ...), in their own units (e.g. pixels in [0, 1]).

    A collapsed generator, which draws the same image for every z, scores 0.
    """
    if not isinstance(samples, torch.Tensor):
        samples = torch.as_tensor(np.asarray(samples))
    return float(pairwise_distance_mean(samples))


def class_coverage(
    probs_or_preds, num_classes: int | None = None, threshold: float = 0.02
) -> tuple[int, float]:
    """``(covered, entropy)`` of the predicted classes of generated samples.

    ``probs_or_preds``: class probabilities or logits (N, K) (argmax is taken), or predicted
    class indices (N,). A class is *covered* when at least ``threshold`` (2 %) of the samples
    fall in it. ``entropy`` is the entropy of the predicted-class histogram in nats: ``ln K``
    (2.30 for 10 classes) when balanced, 0 when every sample is one class.
    """
    a = probs_or_preds
    if not isinstance(a, torch.Tensor):
        a = torch.as_tensor(np.asarray(a))
    a = a.detach().cpu()
    if a.dim() == 2:
        if num_classes is None:
            num_classes = a.shape[1]
        preds = a.argmax(dim=1)
    elif a.dim() == 1:
        preds = a.long()
    else:
        raise ValueError(f"expected (N, K) probabilities or (N,) predictions, got {tuple(a.shape)}")
    if preds.numel() == 0:
        raise ValueError("no samples to judge")
    if num_classes is None:
        num_classes = int(preds.max()) + 1
    freq = torch.bincount(preds, minlength=num_classes).double() / preds.numel()
    covered = int((freq >= threshold).sum())
    nonzero = freq[freq > 0]
    entropy = float(-(nonzero * nonzero.log()).sum())
    return covered, max(entropy, 0.0)  # -0.0 -> 0.0 for a single class
