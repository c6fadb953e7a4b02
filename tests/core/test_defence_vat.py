"""Virtual adversarial training: r_adv against the exact Hessian, the LDS loss's invariants,
modes, gradients, and the semi-supervised job."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from advstudio.core.data import DIGIT_CLASSES, load_digits
from advstudio.core.defence import VatConfig, train_vat, vat_loss, vat_perturbation
from advstudio.core.defence.common import load_checkpoint, subset
from advstudio.core.defence.vat import (
    CHECKPOINT_KIND,
    PixelNet,
    kl_divergence,
    l2_normalise,
    split_labelled,
    vat_step_keys,
)
from advstudio.core.errors import ConfigError, TrainingDivergedError
from advstudio.core.jobs import Metrics, Progress, drive
from advstudio.core.models.classifier import Classifier


def _linear_softmax(seed: int = 0) -> nn.Module:
    """f(x) = W x + b on 2x3 "images", float64: its KL Hessian is known in closed form."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4)).double()
    with torch.no_grad():
        net[1].weight.mul_(3.0)
    return net


def _kl_hessians(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per sample, the Hessian of r -> KL(p(x) || p(x + r)) at r = 0: W^T (diag p - p p^T) W."""
    w = net[1].weight
    p = torch.softmax(net(x), 1)
    fisher = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    return (w.T @ fisher @ w).detach()


def _start(x: torch.Tensor, seed: int) -> torch.Tensor:
    """The random unit start vector vat_perturbation draws with a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return l2_normalise(torch.randn(x.shape, generator=g, dtype=x.dtype)).flatten(1)


def _small_cnn(dropout: bool = True) -> Classifier:
    torch.manual_seed(1)
    layers = [
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 32),
        nn.ReLU(),
    ]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(32, 10))
    return Classifier(nn.Sequential(*layers), (1, 28, 28), DIGIT_CLASSES, (0.1307,), (0.3081,))


# ----------------------------------------------------------------------------- r_adv


@pytest.mark.parametrize("eps", [2.0, 0.3])
def test_r_adv_has_l2_norm_eps_per_sample(eps):
    x, _ = subset(load_digits("test"), 6, 0)
    r = vat_perturbation(
        PixelNet(_small_cnn()), x, eps=eps, generator=torch.Generator().manual_seed(0)
    )
    assert r.shape == x.shape and not r.requires_grad
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.full((6,), eps))


def test_one_power_iteration_gives_the_hessian_times_the_random_start():
    net = _linear_softmax()
    x = torch.rand(5, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    r = vat_perturbation(net, x, xi=1e-6, eps=1.5, generator=torch.Generator().manual_seed(7))
    hd = (_kl_hessians(net, x) @ _start(x, 7).unsqueeze(2)).squeeze(2)
    cos = torch.nn.functional.cosine_similarity(r.flatten(1), hd, dim=1)
    assert cos.min() > 1 - 1e-8, cos


def test_power_iterations_converge_to_the_dominant_eigenvector():
    net = _linear_softmax()
    x = torch.rand(5, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values, vectors = torch.linalg.eigh(_kl_hessians(net, x))
    assert (values[:, -2] / values[:, -1]).max() < 0.8  # a clear gap: 60 iterations converge
    top = vectors[:, :, -1]
    r = vat_perturbation(
        net, x, xi=1e-6, eps=1.0, power_iterations=60, generator=torch.Generator().manual_seed(3)
    )
    cos = torch.nn.functional.cosine_similarity(r.flatten(1), top, dim=1).abs()
    assert cos.min() > 1 - 1e-6, cos
    # and one iteration is not yet there: the test can tell the difference
    r1 = vat_perturbation(net, x, power_iterations=1, generator=torch.Generator().manual_seed(3))
    assert torch.nn.functional.cosine_similarity(r1.flatten(1), top, dim=1).abs().min() < 0.999


def test_r_adv_matches_a_finite_difference_estimate_of_the_kl_gradient():
    """Model-free check: the KL's gradient at xi*d estimated by central differences alone."""
    net = _linear_softmax(seed=2)
    x = torch.rand(3, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    xi, h = 1e-3, 1e-6
    d = _start(x, 5).view_as(x)
    p_logits = net(x).detach()

    def kl_at(r):
        return kl_divergence(p_logits, net(x + r))

    grad = torch.zeros_like(x).flatten(1)
    with torch.no_grad():
        for j in range(6):
            e = torch.zeros(6, dtype=torch.float64)
            e[j] = h
            e = e.view(1, 1, 2, 3)
            grad[:, j] = (kl_at(xi * d + e) - kl_at(xi * d - e)) / (2 * h)
    r = vat_perturbation(net, x, xi=xi, eps=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(r.flatten(1), l2_normalise(grad), rtol=0, atol=1e-6)


def test_r_adv_raises_the_kl_more_than_random_directions_in_float32():
    model = PixelNet(_small_cnn()).eval()
    x, _ = subset(load_digits("test"), 16, 0)
    eps = 1.0
    with torch.no_grad():
        logits = model(x)
        r = vat_perturbation(model, x, eps=eps, generator=torch.Generator().manual_seed(0))
        adv = kl_divergence(logits, model(x + r))
        g = torch.Generator().manual_seed(1)
        rand = torch.stack(
            [
                kl_divergence(
                    logits, model(x + eps * l2_normalise(torch.randn(x.shape, generator=g)))
                )
                for _ in range(20)
            ]
        )
    print(
        "\nKL at r_adv / largest KL of 20 random directions, per image:",
        (adv / rand.max(0).values).numpy().round(1),
    )
    assert (adv > rand.max(0).values).float().mean() >= 0.9
    assert adv.mean() > 5 * rand.mean()


# ----------------------------------------------------------------------------- the loss


def test_vat_loss_is_nonnegative_and_vanishes_quadratically_with_eps():
    net = _linear_softmax()
    x = torch.rand(8, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss(eps):
        return vat_loss(net, x, eps=eps, generator=torch.Generator().manual_seed(0)).item()

    values = {eps: loss(eps) for eps in (0.0, 1e-3, 2e-3, 0.5, 2.0)}
    assert all(v >= 0 for v in values.values())
    assert values[0.0] == 0.0
    assert values[1e-3] < 1e-6
    assert values[2e-3] / values[1e-3] == pytest.approx(4.0, rel=1e-2)  # KL ~ eps^2 r^T H r / 2
    assert values[2.0] > values[0.5] > values[2e-3]


def test_gradient_reaches_the_parameters_only_and_power_iteration_leaves_grads_alone():
    model = PixelNet(_small_cnn())
    x, _ = subset(load_digits("test"), 8, 0)
    x.requires_grad_(True)
    loss = vat_loss(model, x, generator=torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in model.parameters()), "power iteration touched .grad"
    assert loss.requires_grad and loss.dim() == 0
    loss.backward()
    assert x.grad is None
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_every_pass_runs_in_eval_mode_and_the_mode_is_restored():
    clf = _small_cnn(dropout=True)
    model = PixelNet(clf).train()
    dropout = next(m for m in clf.modules() if isinstance(m, nn.Dropout))
    seen = []
    hook = dropout.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    x, _ = subset(load_digits("test"), 4, 0)
    try:
        vat_loss(model, x, power_iterations=2)
    finally:
        hook.remove()
    assert seen == [False] * 4  # p(y|x), two power iterations, the perturbed pass
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    vat_loss(model, x)
    assert not any(m.training for m in model.modules())


def test_given_logits_are_used_and_detached():
    model = PixelNet(_small_cnn(dropout=False)).eval()
    x, _ = subset(load_digits("test"), 4, 0)
    logits = model(x)  # with a graph
    a = vat_loss(model, x, logits=logits, generator=torch.Generator().manual_seed(0))
    b = vat_loss(model, x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    a.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    # p(y|x) is a constant: the same gradient as the perturbed pass alone against fixed p
    model.zero_grad()
    r = vat_perturbation(model, x, generator=torch.Generator().manual_seed(0))
    kl_divergence(logits.detach(), model(x + r)).mean().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


# ----------------------------------------------------------------------------- the job


def test_split_labelled_is_stratified_disjoint_and_seeded():
    _, y = load_digits("train")
    lab, unl = split_labelled(y, 10, seed=0)
    assert len(lab) == 100 and len(unl) == 3900
    assert torch.bincount(y[lab], minlength=10).tolist() == [10] * 10
    assert set(lab.tolist()).isdisjoint(unl.tolist())
    assert sorted(lab.tolist() + unl.tolist()) == list(range(4000))
    assert torch.equal(split_labelled(y, 10, seed=0)[0], lab)
    assert not torch.equal(split_labelled(y, 10, seed=1)[0], lab)


def test_more_labels_than_the_data_has_is_refused():
    _, y = load_digits("train")
    fewest = int(torch.bincount(y).min())
    with pytest.raises(
        ConfigError,
        match=rf"labels_per_class 500 asks for 5000 labels, but the "
        rf"training data \(4000 images\) has only \d+ of class "
        rf"\d; allowed: 1 to {fewest}",
    ):
        drive(train_vat(VatConfig(labels_per_class=500)))


def test_job_events_vat_and_supervised_only():
    data = subset(load_digits("train"), 300, 0)
    for supervised in (False, True):
        cfg = VatConfig(
            labels_per_class=3,
            labelled_batch=8,
            unlabelled_batch=16,
            steps=4,
            eval_every=2,
            eval_images=50,
            supervised_only=supervised,
            entropy_min=not supervised,
        )
        out = drive(train_vat(cfg, data=data), keep_events=True)
        steps = [e for e in out.events if isinstance(e, Metrics) and "loss" in e.values]
        evals = [e for e in out.events if isinstance(e, Metrics) and "test_acc" in e.values]
        assert [e.step for e in steps] == [1, 2, 3, 4]
        assert all(tuple(e.values) == vat_step_keys(cfg) for e in steps)
        assert ("lds" in steps[0].values) is not supervised
        assert [e.step for e in evals] == [0, 2, 4]
        assert [(p.done, p.total) for p in out.events if isinstance(p, Progress)] == [
            (i, 4) for i in range(1, 5)
        ]
        for e in steps:
            v = e.values
            extra = v.get("lds", 0.0) + v.get("entropy", 0.0)
            assert v["loss"] == pytest.approx(v["ce"] + extra, rel=1e-5)
            assert v.get("lds", 0.0) >= 0
        res = out.result
        assert (res.labelled, res.unlabelled) == (30, 0 if supervised else 270)
        assert res.test_acc == evals[-1].values["test_acc"]
        assert res.parameters == sum(v.numel() for v in res.state_dict.values())


def test_dry_run_and_rng(tmp_path):
    state = torch.get_rng_state()
    cfg = VatConfig(
        dry_run=True, checkpoint_path=str(tmp_path / "c"), save_path=str(tmp_path / "m")
    )
    out = drive(train_vat(cfg), keep_events=True)
    assert "dry run" in out.events[0].text and out.result.history[-1]["step"] == 1
    assert not list(tmp_path.iterdir())
    assert torch.equal(torch.get_rng_state(), state)


def test_resume_repeats_the_uninterrupted_run_and_saves_atomically(tmp_path):
    from advstudio.core.models.registry import load_user_model

    data = subset(load_digits("train"), 200, 0)
    kw = dict(
        arch="digits-mlp",
        labels_per_class=4,
        labelled_batch=8,
        unlabelled_batch=16,
        steps=6,
        eval_every=3,
        eval_images=20,
        checkpoint_every=2,
    )
    full = drive(train_vat(VatConfig(**kw), data=data)).result
    ckpt, saved = tmp_path / "vat.ckpt", tmp_path / "vat.pt"
    job = train_vat(VatConfig(**kw, checkpoint_path=str(ckpt), save_path=str(saved)), data=data)
    for event in job:
        if isinstance(event, Progress) and event.done == 3:
            break
    job.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vat.ckpt"]
    assert load_checkpoint(ckpt, CHECKPOINT_KIND)["step"] == 2
    res = drive(
        train_vat(
            VatConfig(**kw, checkpoint_path=str(ckpt), save_path=str(saved), resume=True), data=data
        )
    ).result
    assert res.logs[0] == f"Resumed from {ckpt} at step 2."
    assert res.history == full.history
    for key, value in full.state_dict.items():
        assert torch.equal(res.state_dict[key], value), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vat.ckpt", "vat.pt"]
    loaded = load_user_model(saved, "digits-mlp")
    x = data[0][:5]
    torch.testing.assert_close(loaded(x), res.classifier()(x))


def test_nan_loss_raises(monkeypatch):
    import advstudio.core.defence.vat as vat_mod

    real = vat_mod.vat_loss
    calls = []

    def nan_on_second_call(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out * float("nan") if len(calls) == 2 else out

    monkeypatch.setattr(vat_mod, "vat_loss", nan_on_second_call)
    data = subset(load_digits("train"), 100, 0)
    cfg = VatConfig(
        labels_per_class=2, labelled_batch=8, unlabelled_batch=8, steps=5, eval_images=0
    )
    with pytest.raises(TrainingDivergedError, match="step 2: loss is nan") as info:
        drive(train_vat(cfg, data=data))
    assert info.value.quantity == "loss" and info.value.checkpoint == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xi": 0.0}, r"xi must be a finite number > 0, not 0.0 \(an L2 length over all pixels\)"),
        ({"eps": -1.0}, r"eps must be a finite number >= 0, not -1.0 \(an L2 radius"),
        ({"power_iterations": 0}, "power_iterations must be a whole number >= 1, not 0"),
        ({"labels_per_class": 0}, "labels_per_class must be a whole number >= 1, not 0"),
        (
            {"alpha": -0.5},
            r"alpha must be a finite number >= 0, not -0.5 \(weight of the LDS term\)",
        ),
        ({"arch": "resnet"}, "arch must be one of digits-cnn, digits-mlp, small-cnn"),
        ({"resume": True}, "resume needs a checkpoint_path"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VatConfig(**kwargs)


def test_vat_loss_validates_its_arguments():
    with pytest.raises(ConfigError, match="xi must be"):
        vat_loss(_linear_softmax(), torch.rand(2, 1, 2, 3, dtype=torch.float64), xi=-1.0)


@pytest.mark.slow
def test_vat_beats_supervised_only_with_100_labels():
    """Headline figure (shortened): 100 labels, VAT vs supervised-only on the same labels.

    Reference at 1,500 steps: 82.3 % supervised vs 92.8 % VAT (about 520 s on 2 threads); the
    full run is in the report, this test runs fewer steps to fit a few minutes."""
    steps = 200
    rows = {}
    for supervised in (True, False):
        t = time.perf_counter()
        res = drive(
            train_vat(VatConfig(steps=steps, eval_every=100, supervised_only=supervised))
        ).result
        rows["supervised only" if supervised else "VAT"] = (res, time.perf_counter() - t)
    print(
        f"\n100 labels (10 per class), {steps} steps, 1,000 test digits "
        f"({torch.get_num_threads()} torch thread):"
    )
    for name, (res, wall) in rows.items():
        curve = ", ".join(f"{h['test_acc']:.1%}@{h['step']:.0f}" for h in res.history)
        print(f"  {name:15s}: {res.test_acc:.1%} in {wall:.0f} s ({curve})")
    sup, vat = rows["supervised only"][0].test_acc, rows["VAT"][0].test_acc
    assert sup > 0.6
    assert vat > sup + 0.03
