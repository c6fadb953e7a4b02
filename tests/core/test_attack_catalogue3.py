"""The catalogue entries of Square, FAB-T, L2 PGD / APGD and HopSkipJump: each runs through the
uniform ``run`` within its norm and budget, and the lab and robust accuracy run them."""

from __future__ import annotations

import pytest
import torch

from advstudio.core.attacks import catalogue
from advstudio.core.attacks.catalogue import Access
from advstudio.core.attacks.lab import AttackSpec, attack_image
from advstudio.core.attacks.robust import robust_accuracy
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.jobs import drive
from tests.core.linear import affine

NEW = ("square", "square-l2", "pgd-l2", "apgd-l2", "fab-t", "fab-t-l2", "hsj")
SMALL = {"max_queries": 60, "steps": 5, "target_classes": 2, "eps": 0.3}


@pytest.mark.parametrize("name", NEW)
def test_each_entry_runs_within_its_norm_and_budget(name):
    entry = catalogue.get(name)
    model, x, y = affine(classes=3, n=3)
    params = entry.resolve(SMALL)
    res = entry.run(model, x, y, params, generator=torch.Generator().manual_seed(0), seed=0)
    assert res.x_adv.shape == x.shape
    assert 0 <= float(res.x_adv.min()) and float(res.x_adv.max()) <= 1
    if entry.budgeted:
        delta = (res.x_adv - x).flatten(1)
        size = delta.abs().amax(1) if entry.norm == "Linf" else delta.norm(dim=1)
        assert bool((size <= params["eps"] + 1e-5).all())
    queried = Access.QUERY in entry.access or Access.LABELS in entry.access
    assert (res.queries is not None) == queried
    if queried:
        assert int(res.queries.max()) <= 60


def test_targeted_hopskipjump_starts_from_a_batch_image_of_the_target_class():
    model, x, y = affine(classes=3, n=6, seed=3)
    with torch.no_grad():  # make the batch hold every class: shift three images across
        x[3:] = (
            x[3:] + 0.3 * torch.sign(model.weight[[0, 1, 2]] - model.weight[y[:3]]).view(3, 1, 6, 6)
        ).clamp(0, 1)
        y = model(x).argmax(1)
    if len(set(y.tolist())) < 3:
        pytest.skip("this draw left a class out of the batch")
    target = (y + 1) % 3
    entry = catalogue.get("hsj")
    res = entry.run(
        model,
        x,
        y,
        entry.resolve({"max_queries": 400}),
        target=target,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        assert torch.equal(model(res.x_adv).argmax(1), target)


def test_the_lab_runs_square_and_label_only_hopskipjump(cnn):
    x = sweep_images(1, seed=4)[0]
    assert "hsj" in catalogue.names(access="labels", context="lab")
    for spec in (
        AttackSpec(attack="square", access="query", eps=0.3, max_queries=200),
        AttackSpec(attack="hsj", access="labels", max_queries=200),
    ):
        out = drive(attack_image(cnn, x, spec)).result
        assert 1 <= out.queries <= 200
        assert out.report.success or out.queries == 200
    assert out.report.success  # HopSkipJump always ends adversarial once it has a start


def test_robust_accuracy_runs_square_and_fab_t(cnn):
    x, y = sweep_images(6, seed=5)
    res = robust_accuracy(
        cnn, x, y, 0.3, attacks=("square", "fab-t"), steps=10, max_queries=100, target_classes=2
    )
    assert set(res.broken) <= {"square", "fab-t"} and sum(res.broken.values()) >= 1
    assert res.robust_accuracy < res.clean_accuracy
