"""Triggers, label flips, backdoors and adversarial poison: exact counts and pixels, bad input."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from advstudio.core.data import load_digits
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Progress, drive
from advstudio.core.poisoning import (
    Trigger,
    adversarial_poison,
    adversarial_poison_job,
    attack_success_rate,
    backdoor,
    label_flip,
    poison_count,
    triggered_set,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train")


def checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- triggers


def test_square_trigger_stamps_exactly_its_pixels_and_nothing_else():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    out = Trigger(size=3, row=24, col=24).stamp(x)
    assert torch.equal(x, before)  # input untouched
    assert torch.equal(out[..., 24:27, 24:27], torch.ones(4, 1, 3, 3))
    mask = Trigger(size=3, row=24, col=24).mask(28, 28)
    assert mask.sum() == 9
    assert torch.equal(out[..., ~mask], x[..., ~mask])


def test_checker_and_custom_patterns_are_exact_in_every_channel():
    x = torch.full((2, 3, 6, 6), 0.25)
    out = Trigger(size=2, row=1, col=3, pattern="checker", value=0.9).stamp(x)
    expected = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert torch.allclose(out[:, :, 1:3, 3:5], expected.expand(2, 3, 2, 2))
    custom = Trigger(size=2, row=4, col=0, pattern="custom", custom=(0.0, 0.5, 1.0, 0.75))
    out = custom.stamp(x[0])  # one image (C, H, W)
    assert out[:, 4:6, 0:2].tolist() == [[[0.0, 0.5], [1.0, 0.75]]] * 3
    assert out[:, :4].eq(0.25).all() and out[:, :, 2:].eq(0.25).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=29, row=0, col=0), r"larger than the 28x28 images; size must be in 1\.\.28"),
        (dict(size=3, row=26, col=0), r"off the edge.*row must be in 0\.\.25 and col in 0\.\.25"),
        (dict(size=5, row=0, col=24), r"col in 0\.\.23"),
    ],
)
def test_trigger_that_does_not_fit_is_refused_with_the_allowed_range(digits, kwargs, message):
    x, y = digits
    with pytest.raises(ConfigError, match=message):
        backdoor(x, y, 0.05, trigger=Trigger(**kwargs), target=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=0), "size must be a whole number >= 1"),
        (dict(row=-1), "row must be a whole number >= 0"),
        (dict(pattern="star"), "square, checker, custom"),
        (dict(value=1.5), r"value must be a pixel value in \[0, 1\]"),
        (dict(pattern="custom", size=2, custom=(1.0,)), "needs 4 pixel values"),
    ],
)
def test_bad_trigger_fields(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Trigger(**kwargs)


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    "fraction, expected", [(0.1, 400), (0.0125, 50), (0.00025, 1), (0.000125, 1)]
)
def test_random_flips_poison_round_fraction_of_the_set(digits, fraction, expected):
    x, y = digits
    view = label_flip(x, y, fraction, seed=3)
    assert view.n_poisoned == expected == round(fraction * 4000 + 1e-9)
    assert (view.labels != view.original_labels).all()  # a flip always changes the label
    assert view.labels.min() >= 0 and view.labels.max() <= 9


def test_flips_are_deterministic_per_seed_and_differ_between_seeds(digits):
    x, y = digits
    a, b, c = (label_flip(x, y, 0.1, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.indices, b.indices) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.indices, c.indices)


def test_random_flips_are_spread_over_the_other_classes(digits):
    x, y = digits
    view = label_flip(x, y, 1.0, seed=0)
    counts = torch.bincount((view.labels - view.original_labels) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 4000 / 9 * 0.8  # uniform over 1..9 offsets


def test_source_class_flips_touch_only_that_class(digits):
    x, y = digits
    before = checksum(x, y)
    n3 = int((y == 3).sum())
    view = label_flip(x, y, 0.25, source=3, target=8, seed=1)
    assert view.n_poisoned == round(0.25 * n3)
    assert (y[view.indices] == 3).all() and (view.labels == 8).all()
    changed = view.labels_all != y
    assert changed.sum() == view.n_poisoned and (y[changed] == 3).all()
    assert torch.equal(view.materialize()[0], x)  # images untouched
    assert checksum(x, y) == before


def test_targeted_flips_from_all_classes_skip_the_target(digits):
    x, y = digits
    view = label_flip(x, y, 0.5, target=2, seed=0)
    assert view.n_poisoned == 2000 and (view.original_labels != 2).all()
    assert (view.labels == 2).all()


def test_backdoor_stamps_and_relabels_non_target_images_only(digits):
    x, y = digits
    before = checksum(x, y)
    trigger = Trigger(size=3, row=24, col=24)
    view = backdoor(x, y, 0.05, trigger=trigger, target=0, seed=0)
    assert view.n_poisoned == 200 and (view.original_labels != 0).all()
    xp, yp = view.materialize()
    poisoned = view.poisoned_mask
    assert (yp[poisoned] == 0).all() and torch.equal(yp[~poisoned], y[~poisoned])
    assert xp[poisoned][..., 24:27, 24:27].eq(1.0).all()
    assert torch.equal(xp[~poisoned], x[~poisoned])
    mask = trigger.mask(28, 28)
    assert torch.equal(xp[poisoned][..., ~mask], x[poisoned][..., ~mask])
    assert view.images is None  # the stamp is applied on read, nothing stored
    assert checksum(x, y) == before


def test_triggered_test_set_excludes_the_target_class():
    xt, yt = load_digits("test")
    xs, ys = triggered_set(xt, yt, Trigger(), target=0)
    assert len(xs) == int((yt != 0).sum()) and (ys != 0).all()
    xs, ys = triggered_set(xt, yt, Trigger(), target=0, source=7)
    assert (ys == 7).all() and xs[..., 24:27, 24:27].eq(1).all()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_fraction_outside_unit_interval(digits, fraction):
    x, y = digits
    with pytest.raises(ConfigError, match=r"fraction must be in \[0, 1\]"):
        label_flip(x, y, fraction)


def test_fraction_that_poisons_nothing_names_the_class_size(digits):
    x, y = digits
    n5 = int((y == 5).sum())
    with pytest.raises(
        ConfigError,
        match=rf"poisons no sample: class 5 has {n5} samples, so the "
        r"fraction must be in \[0\.00\d+, 1\]",
    ):
        label_flip(x, y, 0.001, source=5)
    with pytest.raises(ConfigError, match="the data set has 4000 samples"):
        backdoor(x, y, 0.0, target=0)


def test_fraction_larger_than_the_eligible_samples(digits):
    x, y = digits
    with pytest.raises(
        ConfigError,
        match=r"only 3600 of the 4000 samples .* can be poisoned "
        r"\(400 are already of the target class 0\)",
    ):
        backdoor(x, y, 0.95, target=0)
    assert backdoor(x, y, 0.9, target=0).n_poisoned == 3600


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target=10), r"target class must be a class in 0\.\.9, not 10"),
        (dict(target=-1), r"target class must be a class in 0\.\.9"),
        (dict(target=0, source=12), r"source class must be a class in 0\.\.9, not 12"),
        (dict(target=4, source=4), "source and target are both class 4"),
    ],
)
def test_bad_classes(digits, kwargs, message):
    x, y = digits
    with pytest.raises(ConfigError, match=message):
        backdoor(x, y, 0.1, **kwargs)


def test_poison_count_rounds_halves_up():
    assert poison_count(0.5, 3, 3) == 2  # 1.5 -> 2
    assert poison_count(0.25, 10, 10) == 3  # 2.5 -> 3
    assert poison_count(1.0, 10, 10) == 10


# ----------------------------------------------------------------------------- adversarial


def test_adversarial_poison_within_eps_clean_labels_and_progress(digits):
    x, y = digits
    sub_x, sub_y = x[::40], y[::40]  # 100 digits, every class
    before = checksum(sub_x, sub_y)
    job = adversarial_poison_job(sub_x, sub_y, 0.3, attack="fgsm", eps=0.1, seed=0, batch_size=10)
    out = drive(job, keep_events=True)
    view = out.result
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert [p.done for p in progress] == [0, 10, 20, 30] and progress[-1].total == 30
    assert view.n_poisoned == 30 and view.images.shape == (30, 1, 28, 28)
    assert torch.equal(view.labels, view.original_labels)  # clean-label
    clean = sub_x[view.indices]
    delta = (view.images - clean).abs()
    assert delta.max() <= 0.1 + 1e-6 and delta.max() > 0.09
    assert view.images.min() >= 0 and view.images.max() <= 1
    assert checksum(sub_x, sub_y) == before


def test_adversarial_poison_fools_the_model_it_was_made_against(digits):
    from advstudio.core.models.registry import load_model

    x, y = digits
    model = load_model("digits-cnn")
    view = adversarial_poison(
        x[::40],
        y[::40],
        0.5,
        model=model,
        attack="pgd",
        eps=0.2,
        steps=10,
        labels="flip",
        target=3,
        seed=0,
    )
    assert (view.labels == 3).all() and (view.original_labels != 3).all()
    with torch.no_grad():
        acc = (model(view.images).argmax(1) == view.original_labels).float().mean()
    assert acc < 0.2  # PGD at 0.2 against the same model


def test_attack_success_rate_counts_predictions_of_the_target():
    class Always(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(len(x), 10)
            logits[:, 3] = 1.0
            logits[::2, 5] = 2.0  # every other image goes to 5
            return logits

    assert attack_success_rate(Always(), torch.zeros(10, 1, 28, 28), 3) == 0.5
    assert attack_success_rate(Always(), torch.zeros(10, 1, 28, 28), 5) == 0.5
    assert math.isnan(attack_success_rate(Always(), torch.zeros(0, 1, 28, 28), 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attack="cw"), "attack must be one of fgsm, pgd"),
        (dict(labels="keep"), "labels must be one of clean, flip"),
        (dict(eps=2.0), r"eps must be in \[0, 1\]"),
        (dict(target=3), "only makes sense with flipped labels"),
    ],
)
def test_adversarial_poison_bad_settings(digits, kwargs, message):
    x, y = digits
    with pytest.raises(ConfigError, match=message):
        drive(adversarial_poison_job(x[:20], y[:20], 0.5, **kwargs))
