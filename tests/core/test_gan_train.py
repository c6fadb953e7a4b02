"""The GAN training step and job: step order, events, validation, divergence, dry run."""

from __future__ import annotations

import math
import time

import pytest
import torch

from advstudio.core.errors import ConfigError, TrainingDivergedError
from advstudio.core.gan import GanConfig
from advstudio.core.gan.checkpoint import load_checkpoint
from advstudio.core.gan.evaluation import evaluate_digit_generator, frechet_to_test_digits
from advstudio.core.gan.train import STEP_KEYS, GanTrainer, train_gan, training_images
from advstudio.core.jobs import Log, Metrics, Preview, Progress, drive

TINY = dict(batch_size=8, eval_every=0, preview_rate=0.0)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _trainer(**kw) -> GanTrainer:
    cfg = GanConfig(**{**TINY, **kw})
    images, batch = training_images(cfg)
    return GanTrainer(cfg, images, "cpu", batch)


def test_one_step_updates_d_then_g_and_g_step_leaves_d_alone():
    tr = _trainer()
    g0, d0 = _params(tr.generator), _params(tr.discriminator)
    tr.d_step(tr.real_batch())
    g1, d1 = _params(tr.generator), _params(tr.discriminator)
    assert not _same(d0, d1), "the D step changes D"
    assert _same(g0, g1), "the D step does not change G's weights"
    tr.g_step()
    g2, d2 = _params(tr.generator), _params(tr.discriminator)
    assert not _same(g1, g2), "the G step changes G"
    assert _same(d1, d2), "the G step leaves D's weights untouched"


def test_g_step_sees_no_real_images():
    tr = _trainer()
    tr.train_step()
    tr.images = torch.full_like(tr.images, float("nan"))  # any use of real data gives NaN
    seen_by_d, made_by_g = [], []
    h1 = tr.discriminator.register_forward_pre_hook(lambda m, inp: seen_by_d.append(inp[0]))
    h2 = tr.generator.register_forward_hook(lambda m, inp, out: made_by_g.append(out))
    try:
        loss_g, d_g_z2, grad_norm, fake = tr.g_step()
    finally:
        h1.remove()
        h2.remove()
    assert len(seen_by_d) == 1 and len(made_by_g) == 1
    assert seen_by_d[0] is made_by_g[0], "D judged exactly the fresh fake batch"
    assert math.isfinite(loss_g.item()) and 0 < d_g_z2.item() < 1
    assert torch.isfinite(grad_norm) and fake.shape == (8, 1, 28, 28)


def test_targets_smoothing_and_d_steps(monkeypatch):
    import advstudio.core.gan.train as train

    tr = _trainer(label_smoothing=0.1, d_steps=3)
    calls, real_batches = [], []

    def spy(name, fn):
        def wrapped(*args):
            calls.append((name, *args[2:]))  # the smoothing, for D's real part
            return fn(*args)

        monkeypatch.setattr(train, name, wrapped)

    for name in ("d_loss_real", "d_loss_fake", "g_loss"):
        spy(name, getattr(train, name))
    real_batch = tr.real_batch

    def spy_real_batch():
        real_batches.append(1)
        return real_batch()

    tr.real_batch = spy_real_batch
    tr.train_step()
    # 3 x (real at 1 - 0.1, fake at 0), then G's non-saturating loss (never smoothed)
    assert calls == [("d_loss_real", 0.1), ("d_loss_fake",)] * 3 + [("g_loss",)]
    assert len(real_batches) == 3


def test_fresh_noise_for_g_step():
    tr = _trainer()
    made = []
    h = tr.generator.register_forward_hook(lambda m, inp, out: made.append(inp[0].clone()))
    try:
        tr.train_step()
    finally:
        h.remove()
    assert len(made) == 2 and not torch.equal(made[0], made[1])


def test_seeded_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = _trainer(seed=3), _trainer(seed=3), _trainer(seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same(_params(a.generator), _params(b.generator))
    assert torch.equal(a.fixed_noise, b.fixed_noise)
    assert not _same(_params(a.generator), _params(c.generator))
    assert torch.equal(a.train_step(), b.train_step())


def test_job_events_and_result():
    out = drive(train_gan(GanConfig(steps=3, **TINY)), keep_events=True)
    metrics = [e for e in out.events if isinstance(e, Metrics)]
    progress = [e for e in out.events if isinstance(e, Progress)]
    previews = [e for e in out.events if isinstance(e, Preview)]
    assert isinstance(out.events[0], Log)
    assert [m.step for m in metrics] == [1, 2, 3]
    assert all(set(m.values) == set(STEP_KEYS) for m in metrics)
    assert all(
        isinstance(v, float) and math.isfinite(v) for m in metrics for v in m.values.values()
    )
    assert all(0 <= m.values[k] <= 1 for m in metrics for k in ("d_x", "d_g_z1", "d_g_z2"))
    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert len(previews) == 1 and previews[0].name == "samples"  # preview_rate 0: final grid only
    res = out.result
    assert res.step == 3 and res.metrics == metrics[-1].values and res.evaluation == {}
    assert res.samples.shape == (242, 242) and res.samples.min() >= 0 and res.samples.max() <= 1
    assert set(res.generator_state) and all(
        v.device.type == "cpu" for v in res.generator_state.values()
    )


def test_previews_are_throttled_by_time(monkeypatch):
    clock = iter(range(0, 10_000, 1))  # a fake clock: 1 s between calls

    import advstudio.core.gan.train as train_mod

    real_throttle = train_mod.Throttle
    monkeypatch.setattr(
        train_mod, "Throttle", lambda rate: real_throttle(rate, clock=lambda: next(clock) * 0.25)
    )
    monkeypatch.setattr(train_mod, "PREVIEW_BUDGET", 1e9)  # the rate alone decides here
    # 0.25 s between steps at 2 previews/s: every other step gets a preview, plus the final one
    out = drive(train_gan(GanConfig(steps=6, **{**TINY, "preview_rate": 2.0})), keep_events=True)
    steps_with_preview = []
    step = 0
    for e in out.events:
        if isinstance(e, Metrics):
            step = e.step
        elif isinstance(e, Preview):
            steps_with_preview.append(step)
    assert steps_with_preview == [1, 3, 5, 6]
    assert all(e.data.dtype.kind == "f" for e in out.events if isinstance(e, Preview))


def test_previews_take_a_bounded_share_of_time(monkeypatch):
    import advstudio.core.gan.train as train_mod

    # previews slower than the budget allows: after the first, the interval grows to
    # cost / budget, so none fits in this short run until the final grid
    monkeypatch.setattr(train_mod, "PREVIEW_BUDGET", 1e-9)
    out = drive(train_gan(GanConfig(steps=4, **{**TINY, "preview_rate": 1e6})), keep_events=True)
    steps_with_preview, step = [], 0
    for e in out.events:
        if isinstance(e, Metrics):
            step = e.step
        elif isinstance(e, Preview):
            steps_with_preview.append(step)
    assert steps_with_preview == [1, 4]


def test_dry_run_one_tiny_step_on_fake_data(tmp_path):
    cfg = GanConfig(dry_run=True, checkpoint_path=str(tmp_path / "g.pt"))  # default batch 64
    out = drive(train_gan(cfg), keep_events=True)
    assert out.result.step == 1
    assert [e.step for e in out.events if isinstance(e, Metrics)] == [1]  # no evaluation
    assert "fake data" in out.events[0].text
    assert not list(tmp_path.iterdir())  # a dry run writes no checkpoint


def test_other_geometries_train_on_given_data():
    data = torch.rand(16, 3, 32, 32)
    cfg = GanConfig(arch="dcgan", dataset="cifar-like", image_size=32, channels=3, steps=1, **TINY)
    res = drive(train_gan(cfg, data)).result
    assert res.samples.shape == (8 * 34 + 2, 8 * 34 + 2, 3)
    cfg = GanConfig(arch="gan", dataset="mine", image_size=64, channels=1, steps=1, **TINY)
    data = [torch.rand(1, 64, 64) for _ in range(10)]  # a list of images works too
    assert drive(train_gan(cfg, data)).result.step == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "wgan"}, "arch must be one of dcgan, gan, not 'wgan'"),
        ({"image_size": 48}, "image_size must be one of 28, 32, 64 pixels, not 48"),
        ({"channels": 4}, r"channels must be 1 \(grey\) or 3 \(colour\), not 4"),
        ({"latent_dim": 0}, "latent_dim must be a whole number >= 1, not 0"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, not 0"),
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"lr_g": 0.0}, "lr_g must be a finite number > 0"),
        ({"lr_d": float("nan")}, "lr_d must be a finite number > 0"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
        ({"d_steps": 0}, "d_steps must be a whole number >= 1"),
        ({"label_smoothing": 0.5}, r"label_smoothing must be in \[0, 0.5\)"),
        ({"eval_every": -1}, "eval_every must be a whole number >= 0"),
        ({"resume": True}, "resume needs a checkpoint_path"),
        ({"loss": "wasserstein"}, "loss must be one of minimax, non-saturating, least-squares"),
        ({"loss": "hinge", "label_smoothing": 0.1}, "only BCE has a probability target"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"arch": "gan", "conditional": True}, "conditional must be False for the plain GAN"),
        ({"width": 2}, "width must be a whole number"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GanConfig(**kwargs)


@pytest.mark.parametrize(
    ("cfg", "data", "message"),
    [
        (
            GanConfig(batch_size=4001),
            None,
            r"batch_size 4001 is larger than the data set \(4000 images\); allowed: 1 to 4000",
        ),
        (
            GanConfig(batch_size=16),
            torch.rand(10, 1, 28, 28),
            r"larger than the data set \(10 images",
        ),
        (GanConfig(), [torch.rand(1, 28, 28), torch.rand(3, 32, 32)], "mixed shapes"),
        (
            GanConfig(),
            torch.rand(10, 3, 32, 32),
            "holds 3x32x32 images but the config asks for 1x28x28",
        ),
        (GanConfig(), torch.rand(10, 1, 28, 28) * 2 - 1, r"pixels must be in \[0, 1\]"),
        (GanConfig(dataset="cifar10"), None, "dataset 'cifar10' is not built in"),
    ],
)
def test_data_validation(cfg, data, message):
    with pytest.raises(ConfigError, match=message):
        drive(train_gan(cfg, data))


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    real_g_step = GanTrainer.g_step

    def g_step_nan_at_step_3(self):
        loss, *rest = real_g_step(self)
        return (loss * float("nan") if self.step == 2 else loss, *rest)

    monkeypatch.setattr(GanTrainer, "g_step", g_step_nan_at_step_3)
    cfg = GanConfig(arch="gan", steps=10, checkpoint_path=str(path), checkpoint_every=1, **TINY)
    with pytest.raises(TrainingDivergedError) as info:
        drive(train_gan(cfg))
    err = info.value
    assert (err.quantity, err.step, err.checkpoint) == ("loss_g", 3, str(path))
    assert "loss_g is nan" in str(err) and "step 3" in str(err)
    assert f"last good checkpoint (step 2) was kept at {path}" in str(err)
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["generator"].values() if v.is_floating_point())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_huge_learning_rate_diverges():
    # no monkeypatching: absurd learning rates blow the losses up within a few steps
    cfg = GanConfig(arch="gan", steps=50, lr_d=1e6, lr_g=1e6, **TINY)
    with pytest.raises(
        TrainingDivergedError, match=r"Training diverged at step \d+: loss_[dg] is .*no checkpoint"
    ):
        drive(train_gan(cfg))


def test_untrained_generator_covers_few_classes_and_real_digits_score_low():
    tr = _trainer()
    ev = evaluate_digit_generator(tr.generator, tr.config.latent_dim, seed=1)
    print("untrained DCGAN:", ev)
    assert ev["classes_covered"] <= 3
    assert ev["frechet"] > 1000
    x, _ = training_images(GanConfig())
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:1000]
    real = frechet_to_test_digits((x[idx] + 1) / 2)
    print("1,000 real training digits vs test digits:", real)
    assert real < 100


@pytest.mark.slow
def test_the_default_dcgan_draws_all_ten_digits_within_the_cpu_default_steps():
    """Issue #22's fast default: GanConfig's width and learning rates cover 10 of 10 classes
    with a Fréchet distance under 400 (the built-in CNN judging, seed 0) within the GAN tab's
    CPU default of 1,200 steps (measured: 325-340 there over seeds 0-2; Radford et al.'s
    width 64 at 2e-4 is near 720 at step 1,000)."""
    from advstudio.core.gan.config import DEFAULT_STEPS_CPU

    steps = DEFAULT_STEPS_CPU  # the number the GAN tab starts at on a CPU
    t = time.perf_counter()
    out = drive(train_gan(GanConfig(steps=steps, eval_every=steps // 2, preview_rate=0.0)))
    wall = time.perf_counter() - t
    before, mid, after = out.result.history
    print(
        f"\nDCGAN on digits (defaults), {steps} steps in {wall:.0f} s "
        f"({torch.get_num_threads()} torch thread(s)):"
    )
    for name, ev in (("untrained", before), (f"step {mid['step']:.0f}", mid), ("end", after)):
        print(
            f"  {name}: Frechet {ev['frechet']:.0f}, classes covered "
            f"{ev['classes_covered']:.0f}, class entropy {ev['class_entropy']:.2f}, "
            f"sample diversity {ev['sample_diversity']:.2f}"
        )
    assert before["step"] == 0 and after["step"] == steps
    assert after["classes_covered"] == 10 and after["class_entropy"] > 2.1  # ln 10 = 2.30
    assert after["frechet"] < 400 < mid["frechet"] < before["frechet"]
    assert after["sample_diversity"] > before["sample_diversity"]


def test_a_conditional_gan_needs_labels_for_data_it_does_not_know():
    cfg = GanConfig(conditional=True, dataset="mine", steps=1, width=8, **TINY)
    with pytest.raises(ConfigError, match="needs class labels"):
        drive(train_gan(cfg, torch.rand(10, 1, 28, 28)))
    with pytest.raises(ConfigError, match="labels must be 10 classes in 0..9"):
        drive(train_gan(cfg, torch.rand(10, 1, 28, 28), labels=[12] * 10))
    out = drive(train_gan(cfg, torch.rand(10, 1, 28, 28), labels=list(range(10))))
    assert out.result.samples.shape == (10 * 30 + 2, 8 * 30 + 2)  # a row per class


def test_the_last_evaluation_is_its_own_phase():
    out = drive(train_gan(GanConfig(steps=2, **{**TINY, "eval_every": 2})), keep_events=True)
    kinds = [
        ("progress", e.phase, e.done, e.total) if isinstance(e, Progress) else type(e).__name__
        for e in out.events
        if isinstance(e, (Progress, Metrics))
    ]
    final = ("progress", "evaluating the generator", 0, 1)
    assert final in kinds
    after = kinds[kinds.index(final) + 1 :]
    # then the judge's metrics, and no training progress after it
    assert after and all(k == "Metrics" for k in after)
    assert out.result.evaluation  # the judged figures exist
    assert all(
        p[1] != "evaluating the generator" for p in kinds[: kinds.index(final)] if p != "Metrics"
    )
