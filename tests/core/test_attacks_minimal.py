"""DeepFool and Carlini-Wagner L2: closed forms on linear models, strength on the built-in CNN,
invariants and messages; and the per-image "distance to the boundary" comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advstudio.core.attacks import cw_l2, deepfool, l2, minimal_norms
from advstudio.core.attacks.minimal import DEEPFOOL_NUDGE
from advstudio.core.attacks.sweep import sweep_images
from advstudio.core.errors import AttackError, ConfigError
from tests.core.helpers import NoGradLinear


class Linear(nn.Module):
    """Logits ``W x + b`` on flattened 1x4x4 images: every boundary is a hyperplane."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(b.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


@pytest.fixture(scope="module")
def digits():
    return sweep_images(100, seed=0)


@pytest.fixture
def linear_case():
    """Four classes, interior images (0.4..0.6) and steep logits: boundaries ~0.05 away, so
    no step is clipped by the [0, 1] box."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 16, generator=gen, dtype=torch.float64) * 3
    b = torch.randn(4, generator=gen, dtype=torch.float64) * 0.1
    x = 0.4 + 0.2 * torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64)
    return Linear(w, b), x, w, b


def _nearest_boundary(w, b, x, classes=None):
    """Per image: the class across the nearest boundary, its distance and unit normal."""
    z = x.flatten(1) @ w.T + b
    p = z.argmax(1)
    out = []
    for i in range(len(x)):
        others = [k for k in (classes[i] if classes is not None else range(len(w))) if k != p[i]]
        dist = [abs(z[i, k] - z[i, p[i]]) / (w[k] - w[p[i]]).norm() for k in others]
        j = int(torch.stack(dist).argmin())
        k = others[j]
        out.append((k, dist[j], (w[k] - w[p[i]]) / (w[k] - w[p[i]]).norm()))
    return p, out


@pytest.mark.parametrize("overshoot", [0.0, 0.02, 0.5])
def test_deepfool_one_step_lands_on_the_nearest_boundary_times_overshoot(linear_case, overshoot):
    model, x, w, b = linear_case
    _, nearest = _nearest_boundary(w, b, x)
    expected = torch.stack(
        [
            x[i] + (1 + overshoot) * (d + DEEPFOOL_NUDGE) * n.view(1, 4, 4)
            for i, (_, d, n) in enumerate(nearest)
        ]
    )
    assert expected.min() > 0 and expected.max() < 1  # the box does not bind
    out = deepfool(model, x, steps=1, overshoot=overshoot)
    assert torch.allclose(out, expected, atol=1e-10)
    for i, (k, d, n) in enumerate(nearest):  # x + d n is on that boundary
        z = (x[i].flatten() + d * n) @ w.T + b
        assert z[k] == pytest.approx(float(z.max()), abs=1e-9)
    # and the step crossed it: on a linear model one step is all DeepFool takes
    pred = model(out).argmax(1)
    assert pred.tolist() == [k for k, _, _ in nearest]
    assert torch.equal(deepfool(model, x, steps=50, overshoot=overshoot), out)
    assert torch.allclose(
        l2(x, out).double(),
        torch.tensor(
            [(1 + overshoot) * (float(d) + DEEPFOOL_NUDGE) for _, d, _ in nearest],
            dtype=torch.float64,
        ),
        rtol=1e-6,
    )


def test_deepfool_top_k_candidates(linear_case):
    model, x, w, b = linear_case
    z = model(x).detach()
    top2 = z.topk(2, dim=1).indices.tolist()  # predicted + runner-up only
    _, nearest = _nearest_boundary(w, b, x, classes=top2)
    expected = torch.stack(
        [
            x[i] + 1.02 * (d + DEEPFOOL_NUDGE) * n.view(1, 4, 4)
            for i, (_, d, n) in enumerate(nearest)
        ]
    )
    assert torch.allclose(deepfool(model, x, steps=1, num_classes=2), expected, atol=1e-10)
    assert torch.equal(deepfool(model, x, num_classes=4), deepfool(model, x))


def test_deepfool_on_the_cnn_flips_every_digit_and_leaves_wrong_ones(cnn, digits):
    x, y = digits[0][:12], digits[1][:12].clone()
    y[0] = (y[0] + 1) % 10  # "already misclassified"
    out = deepfool(cnn, x, y=y)
    assert out.shape == x.shape and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[0], x[0])
    with torch.no_grad():
        assert bool((cnn(out[1:]).argmax(1) != y[1:]).all())
    one = deepfool(cnn, x[3], y=int(y[3]))
    assert one.shape == (1, 28, 28) and torch.allclose(one, out[3], atol=1e-5)


def test_cw_on_a_linear_model_is_close_to_the_true_minimum():
    """Binary logistic regression as logits ``[0, w.x + b]``: the smallest L2 flip of an
    interior point is ``|w.x + b| / ||w||``. C&W cannot beat it and should get close."""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(2, 16, generator=gen)
    w[0] = 0
    x = 0.4 + 0.2 * torch.rand(4, 1, 4, 4, generator=gen)
    b = torch.zeros(2)
    b[1] = -(x.flatten(1) @ w[1]).mean() + 0.3
    model = Linear(w, b)
    y = model(x).argmax(1).detach()
    exact = (x.flatten(1) @ w[1] + b[1]).abs() / w[1].norm()
    out = cw_l2(model, x, y, steps=100, search_steps=6, lr=0.01)
    found = l2(x, out)
    assert bool((model(out).argmax(1) != y).all())
    assert bool((found >= exact - 1e-4).all())
    assert bool((found <= exact * 1.05 + 1e-3).all()), (found, exact)


def test_cw_confidence_and_targets(cnn, digits):
    x, y = digits[0][:4], digits[1][:4]
    target = (y + 1) % 10
    out = cw_l2(cnn, x, target, targeted=True, y_true=y, kappa=1.0, steps=60, search_steps=2)
    with torch.no_grad():
        z = cnn(out)
    reached = z.argmax(1) == target
    assert bool(reached.any())
    others = z.scatter(1, target[:, None], float("-inf")).amax(1)
    assert bool((z.gather(1, target[:, None])[:, 0] - others)[reached].min() >= 1.0 - 1e-4)
    assert torch.equal(out[~reached], x[~reached])  # failures: the image itself


def test_cw_beats_fgsm_and_minimal_norms_bookkeeping(cnn, digits):
    x, y = digits[0][:8], digits[1][:8].clone()
    y[0] = (y[0] + 1) % 10  # misclassified: norm 0
    res = minimal_norms(cnn, x, y, options={"cw": {"steps": 80, "search_steps": 2}})
    fgsm, df, cw = res["fgsm"], res["deepfool"], res["cw"]
    print(
        f"\nmedian L2 on 7 digits: FGSM {fgsm.median():.2f}, DeepFool {df.median():.2f}, "
        f"C&W {cw.median():.2f}; success {fgsm.success_rate:.2f} {df.success_rate:.2f} "
        f"{cw.success_rate:.2f}"
    )
    for r in res.values():
        assert not bool(r.correct[0]) and bool(r.correct[1:].all())
        assert r.l2[0] == 0 and r.linf[0] == 0 and bool(r.success[0])
        assert bool(torch.isnan(r.l2[~r.success]).all())
        assert torch.allclose(r.l2[r.success], l2(x, r.x_adv)[r.success])
    both = fgsm.success[1:] & cw.success[1:]
    smaller = (cw.l2[1:] < fgsm.l2[1:]) & both
    assert int(smaller.sum()) >= 5  # most of the 7
    assert df.success_rate == 1.0 and cw.success_rate >= 5 / 7


def test_model_mode_restored_and_no_parameter_grads(cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    cnn.train()
    try:
        a = deepfool(cnn, x, steps=3)
        assert torch.equal(a, deepfool(cnn, x, steps=3))  # eval mode: no dropout
        cw_l2(cnn, x, y, steps=2, search_steps=1)
        assert cnn.training
    finally:
        cnn.eval()
    assert all(p.grad is None for p in cnn.parameters())
    with torch.no_grad():  # a caller without autograd
        assert torch.equal(deepfool(cnn, x, steps=3), a)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y: deepfool(m, x, steps=0), "steps must be a whole number >= 1, not 0"),
        (lambda m, x, y: deepfool(m, x, overshoot=-0.1), "overshoot must be a finite number >= 0"),
        (lambda m, x, y: deepfool(m, x, num_classes=1), r"num_classes .* \[2, 10\].* not 1"),
        (lambda m, x, y: deepfool(m, x, num_classes=11), r"\[2, 10\]"),
        (lambda m, x, y: cw_l2(m, x, y, kappa=-1), "kappa .* >= 0, not -1"),
        (lambda m, x, y: cw_l2(m, x, y, c=0), "c .* > 0, not 0"),
        (lambda m, x, y: cw_l2(m, x, y, lr=float("nan")), "lr"),
        (lambda m, x, y: cw_l2(m, x, y, steps=0), "steps .* not 0"),
        (lambda m, x, y: cw_l2(m, x, y, search_steps=0), "search_steps .* not 0"),
        (lambda m, x, y: cw_l2(m, x, y, targeted=True, y_true=y), "is the true class"),
        (lambda m, x, y: cw_l2(m, x, y + 10), r"out of range.*\[0, 9\]"),
        (
            lambda m, x, y: minimal_norms(m, x, y, methods=("fgsm", "jsma")),
            "unknown method 'jsma'; allowed: fgsm, deepfool, cw",
        ),
    ],
)
def test_bad_settings_are_named(cnn, digits, call, message):
    with pytest.raises(ConfigError, match=message):
        call(cnn, digits[0][:2], digits[1][:2])


def test_model_without_gradients_suggests_black_box(digits):
    x, y = digits[0][:2], digits[1][:2]
    for call in (lambda m: deepfool(m, x), lambda m: cw_l2(m, x, y, steps=1, search_steps=1)):
        model = NoGradLinear().train()
        with pytest.raises(AttackError, match="black-box"):
            call(model)
        assert model.training


@pytest.mark.slow
def test_distance_to_the_boundary_on_50_digits(cnn):
    x, y = sweep_images(50, seed=0)
    res = minimal_norms(cnn, x, y)
    print(
        "\n"
        + ", ".join(
            f"{k}: median L2 {r.median():.3f} L-inf {r.median('linf'):.3f} "
            f"success {r.success_rate:.2f}"
            for k, r in res.items()
        )
    )
    assert res["deepfool"].success_rate == 1.0 and res["cw"].success_rate > 0.95
    assert res["cw"].median() < res["deepfool"].median() < res["fgsm"].median()
