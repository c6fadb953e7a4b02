"""A poisoned data set as a *view* over the clean one.

The clean images and labels are never copied or modified: a :class:`PoisonedView` keeps references
to them plus what differs, for the poisoned samples only:

- ``indices``: the sorted positions of the poisoned samples in the view;
- ``labels``: their replacement labels;
- ``images`` (optional): replacement images, one per poisoned sample (adversarial examples);
- ``transform`` (optional): a function applied to the poisoned images whenever they are read
  (a backdoor :class:`~advstudio.core.poisoning.triggers.Trigger` stamp).

Reads gather: :meth:`PoisonedView.batch` takes a tensor of positions and returns fresh
``(x, y)`` tensors with the poison applied, which is all a training loop needs.

Memory: the view itself holds 16 bytes per poisoned sample (index and label), plus one image per
poisoned sample for adversarial poisoning, plus 8 bytes per sample after :meth:`select` (the row
map). :meth:`materialize` instead copies the whole set (``N x C x H x W x 4`` bytes: 12.5 MB for
the 4,000 digits, 600 MB for CIFAR-10's 50,000 training images), once per call. Materialise only
to hand plain tensors to code that wants them (e.g. a training job taking ``(x, y)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from advstudio.core.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]
Positions = torch.Tensor | Sequence[int] | slice | int


class PoisonedView:
    """The clean set ``(x, y)`` with the samples at ``indices`` poisoned.

    Parameters
    ----------
    x, y : the clean images (N, C, H, W) float in [0, 1] and labels (N,) int64; referenced, never
        modified.
    indices : positions of the poisoned samples in the view, strictly increasing, (K,).
    labels : their labels in the poisoned set, (K,) (equal to the clean labels for clean-label
        poisoning).
    images : optional replacement images for the poisoned samples, (K, C, H, W).
    transform : optional function of a batch of poisoned images (k, C, H, W) -> (k, C, H, W),
        applied after ``images`` on every read; it must not modify its input.
    rows : optional clean-row index of each view position, (M,): the view then has M samples
        (a subset of the clean set, see :meth:`select`). ``None``: all N rows in order.
    kind : a short name of the attack, for display.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        indices: torch.Tensor,
        labels: torch.Tensor,
        *,
        images: torch.Tensor | None = None,
        transform: Transform | None = None,
        rows: torch.Tensor | None = None,
        kind: str = "",
    ) -> None:
        if x.dim() != 4:
            raise ConfigError(f"images must have shape (N, C, H, W), not {tuple(x.shape)}")
        if y.dim() != 1 or len(y) != len(x):
            raise ConfigError(f"labels must have shape ({len(x)},), not {tuple(y.shape)}")
        self.x, self.y = x, y
        self.rows = None if rows is None else torch.as_tensor(rows, dtype=torch.long)
        if (
            self.rows is not None
            and len(self.rows)
            and (int(self.rows.min()) < 0 or int(self.rows.max()) >= len(x))
        ):
            raise ConfigError(f"rows must be in 0..{len(x) - 1}")
        indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        n = len(self)
        if len(indices) and (
            int(indices[0]) < 0
            or int(indices[-1]) >= n
            or bool((indices[1:] <= indices[:-1]).any())
        ):
            raise ConfigError(f"poisoned indices must be strictly increasing and in 0..{n - 1}")
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if len(labels) != len(indices):
            raise ConfigError(f"{len(labels)} labels for {len(indices)} poisoned samples")
        if images is not None and (
            images.dim() != 4 or len(images) != len(indices) or images.shape[1:] != x.shape[1:]
        ):
            raise ConfigError(
                f"replacement images must have shape ({len(indices)}, "
                f"{', '.join(map(str, x.shape[1:]))}), not {tuple(images.shape)}"
            )
        self.indices, self.labels, self.images = indices, labels, images
        self.transform, self.kind = transform, kind

    # ------------------------------------------------------------------ size and bookkeeping

    def __len__(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    def __repr__(self) -> str:
        return (
            f"PoisonedView({self.kind or 'poison'}: {self.n_poisoned} of {len(self)} samples"
            f"{', replacement images' if self.images is not None else ''}"
            f"{', transform' if self.transform is not None else ''})"
        )

    @property
    def n_poisoned(self) -> int:
        return len(self.indices)

    @property
    def fraction(self) -> float:
        """Share of the view's samples that are poisoned."""
        return self.n_poisoned / len(self) if len(self) else 0.0

    @property
    def source_rows(self) -> torch.Tensor:
        """The clean-row index of every view position, (len,)."""
        return torch.arange(len(self.x)) if self.rows is None else self.rows

    @property
    def poisoned_rows(self) -> torch.Tensor:
        """The clean-set rows of the poisoned samples, (K,)."""
        return self.indices if self.rows is None else self.rows[self.indices]

    @property
    def original_labels(self) -> torch.Tensor:
        """The clean labels of the poisoned samples, (K,)."""
        return self.y[self.poisoned_rows]

    @property
    def poisoned_mask(self) -> torch.Tensor:
        """Boolean (len,): True at the poisoned positions."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[self.indices] = True
        return mask

    @property
    def labels_all(self) -> torch.Tensor:
        """Every label of the view (poisoned where poisoned), (len,); a fresh tensor, cheap."""
        out = self.y[self.source_rows].clone()
        out[self.indices] = self.labels
        return out

    @property
    def extra_bytes(self) -> int:
        """Bytes the view holds beyond the clean tensors it references."""
        tensors = [self.indices, self.labels, self.images, self.rows]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    @property
    def materialized_bytes(self) -> int:
        """Bytes :meth:`materialize` allocates (images and labels of every sample)."""
        return len(self) * (self.x[0].numel() * self.x.element_size() + self.y.element_size())

    # ------------------------------------------------------------------ reading

    def _positions(self, idx: Positions) -> torch.Tensor:
        n = len(self)
        if isinstance(idx, slice):
            return torch.arange(n)[idx]
        pos = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        if len(pos) and (int(pos.min()) < -n or int(pos.max()) >= n):
            raise IndexError(f"index out of range for a view of {n} samples")
        return torch.where(pos < 0, pos + n, pos)

    def _slots(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For view positions ``pos``: each one's slot in ``indices`` and whether it is poisoned
        (a binary search: O(K) memory however large the set)."""
        k = len(self.indices)
        if k == 0:
            return torch.zeros_like(pos), torch.zeros_like(pos, dtype=torch.bool)
        slot = torch.searchsorted(self.indices, pos).clamp_max_(k - 1)
        return slot, self.indices[slot] == pos

    def batch(self, idx: Positions) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at view positions ``idx`` (a tensor, list or slice), poison applied.

        Returns new tensors ``(x, y)`` of shapes (n, C, H, W) and (n,), on the clean tensors'
        device; writing to them does not touch the clean set.
        """
        pos = self._positions(idx)
        rows = pos if self.rows is None else self.rows[pos]
        xb, yb = self.x[rows], self.y[rows]  # advanced indexing: copies
        slot, hit = self._slots(pos)
        if bool(hit.any()):
            k = slot[hit]
            yb[hit] = self.labels[k].to(yb.device)
            if self.images is not None:
                xb[hit] = self.images[k].to(xb.device, xb.dtype)
            if self.transform is not None:
                xb[hit] = self.transform(xb[hit])
        return xb, yb

    def __getitem__(self, i: Positions) -> tuple[torch.Tensor, torch.Tensor | int]:
        """``view[i]`` -> ``(image (C, H, W), label int)``; a slice or tensor gives a batch."""
        if isinstance(i, (int, np.integer)):
            xb, yb = self.batch([int(i)])
            return xb[0], int(yb[0])
        return self.batch(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole poisoned set as plain tensors: a full copy (see :attr:`materialized_bytes`)."""
        return self.batch(slice(None))

    def select(self, positions: Positions) -> PoisonedView:
        """The view restricted to ``positions`` (e.g. what a sanitiser keeps), in that order.

        Shares the clean tensors; the poisoned samples among ``positions`` stay poisoned.
        """
        pos = self._positions(positions)
        slot, hit = self._slots(pos)
        k = slot[hit]
        return PoisonedView(
            self.x,
            self.y,
            torch.nonzero(hit).reshape(-1),
            self.labels[k],
            images=None if self.images is None else self.images[k],
            transform=self.transform,
            rows=self.source_rows[pos],
            kind=self.kind,
        )

    def gallery(self, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` poisoned samples for display, spread evenly over them: images float32 in
        [0, 1], (n, H, W) for grey images or (n, H, W, C), and labels int64 (n, 2) as (clean
        label, poisoned label)."""
        k = min(max(0, n), len(self.indices))
        # evenly spread over the poisoned samples (they are sorted, and the clean set by class)
        pos = (
            self.indices[torch.linspace(0, len(self.indices) - 1, k).round().long()]
            if k
            else self.indices[:0]
        )
        xb, yb = self.batch(pos)
        images = xb.detach().cpu().float()
        images = images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)
        labels = torch.stack([self.y[self.source_rows[pos]].cpu(), yb.cpu()], dim=1)
        return images.numpy().copy(), labels.numpy().astype(np.int64)


def clean_view(x: torch.Tensor, y: torch.Tensor) -> PoisonedView:
    """A view with nothing poisoned (the baseline)."""
    empty = torch.zeros(0, dtype=torch.long)
    return PoisonedView(x, y, empty, empty, kind="clean")
