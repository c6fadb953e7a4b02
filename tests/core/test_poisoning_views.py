"""PoisonedView: a view over the clean tensors that never modifies them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from advstudio.core.errors import ConfigError
from advstudio.core.poisoning import PoisonedView, Trigger, clean_view


def checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 8, 8, generator=g)
    y = torch.arange(50) % 10
    return x, y


def test_batch_applies_labels_images_and_transform_only_at_poisoned_positions(data):
    x, y = data
    before = checksum(x, y)
    idx = torch.tensor([3, 10, 41])
    images = torch.zeros(3, 1, 8, 8)
    view = PoisonedView(
        x, y, idx, torch.tensor([7, 7, 7]), images=images, transform=Trigger(size=2, row=0, col=0)
    )
    xb, yb = view.batch(torch.arange(50))
    poisoned = view.poisoned_mask
    assert poisoned.sum() == 3 and poisoned[idx].all()
    assert torch.equal(xb[~poisoned], x[~poisoned]) and torch.equal(yb[~poisoned], y[~poisoned])
    assert yb[idx].tolist() == [7, 7, 7]
    expected = torch.zeros(3, 1, 8, 8)
    expected[..., :2, :2] = 1.0  # replacement image, then the stamp
    assert torch.equal(xb[idx], expected)
    xb += 1  # fresh tensors: writing to them leaves the clean set alone
    yb[:] = 0
    assert checksum(x, y) == before


def test_item_batch_and_materialize_agree_in_any_order(data):
    x, y = data
    view = PoisonedView(
        x,
        y,
        torch.tensor([0, 5, 49]),
        torch.tensor([9, 9, 9]),
        transform=Trigger(size=3, row=5, col=5),
    )
    full_x, full_y = view.materialize()
    order = torch.tensor([49, 0, 7, 5, 5, -1])
    xb, yb = view.batch(order)
    assert torch.equal(xb, full_x[order]) and torch.equal(yb, full_y[order])
    image, label = view[-1]
    assert isinstance(label, int) and label == 9 and torch.equal(image, full_x[49])
    assert len(view) == 50 and len(list(view)) == 50
    assert torch.equal(view.labels_all, full_y)


def test_clean_tensors_unchanged_by_every_operation(data):
    x, y = data
    before = checksum(x, y)
    view = PoisonedView(
        x,
        y,
        torch.arange(0, 50, 3),
        torch.zeros(17, dtype=torch.long),
        transform=Trigger(size=4, row=4, col=4),
    )
    view.materialize()
    view.batch([1, 2, 3])
    sub = view.select(torch.arange(10, 40))
    sub.materialize()
    view.gallery(16)
    assert checksum(x, y) == before
    assert view.x is x and sub.x is x  # a view, not a copy


def test_select_keeps_the_poison_of_the_kept_samples(data):
    x, y = data
    view = PoisonedView(
        x, y, torch.tensor([2, 4, 6]), torch.tensor([1, 1, 1]), images=torch.ones(3, 1, 8, 8)
    )
    sub = view.select(torch.tensor([1, 2, 3, 6]))
    assert len(sub) == 4 and sub.indices.tolist() == [1, 3]
    assert sub.poisoned_rows.tolist() == [2, 6]
    xs, ys = sub.materialize()
    xv, yv = view.batch(torch.tensor([1, 2, 3, 6]))
    assert torch.equal(xs, xv) and torch.equal(ys, yv)
    assert sub.original_labels.tolist() == [2, 6]
    assert sub.select([1]).materialize()[1].tolist() == [1]  # a view of a view


def test_memory_accounting(data):
    x, y = data
    view = PoisonedView(x, y, torch.tensor([1, 2]), torch.tensor([0, 0]))
    assert view.extra_bytes == 2 * 8 + 2 * 8
    assert view.materialized_bytes == 50 * (64 * 4 + 8)
    assert "2 of 50" in repr(view)


def test_gallery_is_numpy_with_clean_and_poisoned_labels(data):
    x, y = data
    view = PoisonedView(
        x,
        y,
        torch.tensor([11, 12]),
        torch.tensor([4, 4]),
        transform=Trigger(size=1, row=0, col=0, value=0.5),
    )
    images, labels = view.gallery(16)
    assert images.shape == (2, 8, 8) and images.dtype == np.float32
    assert images[:, 0, 0].tolist() == [0.5, 0.5]
    assert labels.tolist() == [[1, 4], [2, 4]]
    assert clean_view(x, y).gallery()[0].shape == (0, 8, 8)


@pytest.mark.parametrize(
    "indices, labels, message",
    [
        ([3, 2], [0, 0], "strictly increasing"),
        ([1, 1], [0, 0], "strictly increasing"),
        ([50], [0], "0..49"),
        ([-1], [0], "0..49"),
        ([1, 2], [0], "2 poisoned samples"),
    ],
)
def test_bad_poison_description_is_refused(data, indices, labels, message):
    x, y = data
    with pytest.raises(ConfigError, match=message):
        PoisonedView(x, y, torch.tensor(indices), torch.tensor(labels))


def test_bad_replacement_images_and_out_of_range_reads(data):
    x, y = data
    with pytest.raises(ConfigError, match="replacement images"):
        PoisonedView(x, y, torch.tensor([1]), torch.tensor([0]), images=torch.zeros(2, 1, 8, 8))
    view = clean_view(x, y)
    with pytest.raises(IndexError):
        view.batch([50])
    assert view.n_poisoned == 0 and view.fraction == 0.0
