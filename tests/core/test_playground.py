"""The GAN playground's engine: targets, coverage, losses, one-network steps, live parameters,
the job, and (slow) the failure and the fix on the 8-Gaussian ring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Metrics, Preview, Progress, drive
from advstudio.core.playground import (
    VIEW,
    LiveParams,
    Playground,
    PlaygroundConfig,
    PlaygroundParams,
    coverage,
    make_target,
    run_playground,
)
from advstudio.core.playground.metrics import Diagnostics, oscillating
from advstudio.core.playground.model import HEAT_RES, MESH_RES, d_loss, g_loss, gradient_penalty
from advstudio.core.playground.targets import drawn


def _state(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _changed(before: list[torch.Tensor], net: nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def _playground(target="ring", seed=0, **params) -> Playground:
    return Playground(PlaygroundParams(make_target(target), **params), PlaygroundConfig(seed=seed))


# -- targets and coverage ---------------------------------------------------------------------
@pytest.mark.parametrize("key, modes", [("ring", 8), ("grid", 25), ("spiral", 8), ("moons", 2)])
def test_targets_are_seeded_inside_the_view_and_mostly_high_quality(key, modes):
    target = make_target(key)
    assert target.n_modes == modes
    x = target.sample(20_000, torch.Generator().manual_seed(1))
    assert x.shape == (20_000, 2) and x.dtype == torch.float32
    assert torch.equal(x, target.sample(20_000, torch.Generator().manual_seed(1)))
    xmin, xmax, ymin, ymax = VIEW
    assert xmin < x[:, 0].min() and x[:, 0].max() < xmax
    assert ymin < x[:, 1].min() and x[:, 1].max() < ymax
    cov = coverage(x.numpy(), target)
    assert cov.modes_covered == modes
    if not target.curve:
        # 2-D Gaussian: P(|x - centre| <= 3 sd) = 1 - exp(-9 / 2) (a Rayleigh tail)
        assert cov.quality == pytest.approx(1 - math.exp(-4.5), abs=0.003)
    else:  # within 3 sd of the curve: at least the Gaussian's share
        assert cov.quality > 0.985


def test_drawn_points_make_one_mode_per_stroke_or_click():
    stroke = [(-1 + 0.05 * i, 0.0) for i in range(10)]  # 0.05 apart: chained
    target = drawn(stroke + [(2.0, 2.0), (-2.0, -2.0)])
    assert target.n_modes == 3
    assert list(target.labels) == [0] * 10 + [1, 2]
    assert drawn([(9.0, -9.0)]).reference.tolist() == [[3.0, -3.0]]  # clipped to the view


def test_modes_covered_is_exact_on_hand_placed_points():
    target = make_target("ring")  # centres 2 (cos k pi/4, sin k pi/4), sd 0.05: 3 sd = 0.15
    centres = target.reference
    rng = np.random.default_rng(0)

    def near(k, count, dist):
        angle = rng.uniform(0, 2 * np.pi, count)
        return centres[k] + dist * np.stack([np.cos(angle), np.sin(angle)], 1)

    # 100 samples: a mode needs ceil(0.2 * 100 / 8) = 3 of them within 0.15 of its centre
    samples = np.concatenate(
        [
            near(0, 40, 0.0),  # covered
            near(1, 30, 0.14),  # covered (just inside 3 sd)
            near(2, 20, 0.16),  # just outside 3 sd: neither covered nor high quality
            near(3, 2, 0.05),  # too few
            near(4, 3, 0.10),  # exactly enough
            np.array([[0.0, 0.0]] * 5),  # the empty centre of the ring
        ]
    )
    cov = coverage(samples, target)
    assert cov.threshold == 3
    assert cov.counts.tolist() == [40, 30, 0, 2, 3, 0, 0, 0]
    assert cov.modes_covered == 3
    assert cov.quality == pytest.approx(75 / 100)


# -- losses -----------------------------------------------------------------------------------
def test_hinge_and_wgan_losses_against_hand_computed_values():
    r = torch.tensor([[0.5], [2.0]])
    f = torch.tensor([[-2.0], [0.3]])
    # hinge D: mean(relu(1 - r)) + mean(relu(1 + f)) = (0.5 + 0) / 2 + (0 + 1.3) / 2
    assert d_loss("hinge", r, f).item() == pytest.approx(0.25 + 0.65)
    assert g_loss("hinge", f).item() == pytest.approx(0.85)  # -mean(f)
    # WGAN critic: mean(f) - mean(r) = -0.85 - 1.25
    assert d_loss("wgan-gp", r, f).item() == pytest.approx(-2.1)
    assert g_loss("wgan-gp", f).item() == pytest.approx(0.85)
    # BCE losses at D's indifference point (logit 0, probability 1/2)
    zero = torch.zeros(3, 1)
    assert d_loss("minimax", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_loss("non-saturating", zero).item() == pytest.approx(math.log(2))  # -log 1/2
    assert g_loss("minimax", zero).item() == pytest.approx(-math.log(2))  # log(1 - 1/2)


def test_gradient_penalty_against_hand_computed_values():
    linear = nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))  # |grad| = 5 everywhere
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    assert gradient_penalty(linear, real, fake, torch.rand(4, 1)).item() == pytest.approx(16.0)

    class HalfSquare(nn.Module):  # D(x) = |x|^2 / 2 * scale: grad = scale * x
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            return self.scale * (x**2).sum(1, keepdim=True) / 2

    critic = HalfSquare()
    real = torch.tensor([[2.0, 0.0], [4.0, 0.0]])
    fake = torch.zeros(2, 2)
    eps = torch.tensor([[0.5], [0.75]])  # x_hat = (1, 0) and (3, 0): (1 - 1)^2, (3 - 1)^2
    gp = gradient_penalty(critic, real, fake, eps)
    assert gp.item() == pytest.approx((0 + 4) / 2)
    gp.backward()  # d/ds mean((s |x_hat| - 1)^2) = mean(2 (s|x_hat| - 1) |x_hat|) = (0 + 12) / 2
    assert critic.scale.grad.item() == pytest.approx(6.0)


# -- steps ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["minimax", "non-saturating", "wgan-gp", "hinge"])
def test_a_d_step_moves_only_d_and_a_g_step_only_g(loss):
    play = _playground(loss=loss, batch_size=32)
    g0, d0 = _state(play.G), _state(play.D)
    values = play.d_step()
    assert _changed(d0, play.D) and not _changed(g0, play.G)
    assert set(values) >= {"loss_d", "d_real", "d_fake"} and ("gp" in values) == (loss == "wgan-gp")
    g1, d1 = _state(play.G), _state(play.D)
    play.g_step()
    assert _changed(g1, play.G) and not _changed(d1, play.D)
    assert all(p.requires_grad for p in play.D.parameters())  # unfrozen again
    assert (play.steps_done, play.d_updates) == (1, 1)


def test_step_is_k_d_steps_then_one_g_step_and_is_seeded():
    a, b = _playground(d_steps=3, batch_size=16), _playground(d_steps=3, batch_size=16)
    va, vb = a.step(), b.step()
    assert va == vb and (a.steps_done, a.d_updates) == (1, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.G.parameters(), b.G.parameters()))
    c = _playground(seed=1, d_steps=3, batch_size=16)
    assert c.step() != va


def test_snapshot_shapes_and_arrows_point_where_d_says_real():
    play = _playground(batch_size=64)
    for _ in range(20):
        play.step()
    snap = play.snapshot()
    assert snap.real.shape == snap.fake.shape == (1000, 2)
    assert snap.heat.shape == (HEAT_RES, HEAT_RES) and 0 <= snap.heat.min() <= snap.heat.max() <= 1
    assert snap.mesh.shape == (MESH_RES, MESH_RES, 2)
    assert snap.moved is None and snap.phase == "" and snap.step == 20
    assert np.array_equal(snap.fake, play.sample())
    # the heat map's pixel (row i, column j) is D at (x_j, y_i)
    xmin, xmax, ymin, ymax = VIEW
    i, j = 10, 50
    x = xmin + (j + 0.5) * (xmax - xmin) / HEAT_RES
    y = ymin + (i + 0.5) * (ymax - ymin) / HEAT_RES
    with torch.no_grad():
        d = torch.sigmoid(play.D(torch.tensor([[x, y]]))).item()
    assert snap.heat[i, j] == pytest.approx(d, abs=1e-5)
    # non-saturating: -grad of softplus(-D) = sigmoid(-D) grad D, uphill on D
    x0 = torch.as_tensor(snap.fake[: len(snap.arrows)])
    arrows = torch.as_tensor(snap.arrows)
    step = 1e-3 * arrows / arrows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        assert (play.D(x0 + step) > play.D(x0)).float().mean() > 0.95


def test_wgan_heat_map_ranks_the_critic_over_the_box():
    play = _playground(loss="wgan-gp", d_steps=5, gp_weight=1.0, batch_size=64)
    for _ in range(30):
        play.step()
    snap = play.snapshot()
    with torch.no_grad():
        scores = play.D(play.heat_points).ravel().numpy()
    n = HEAT_RES * HEAT_RES
    assert np.allclose(np.sort(snap.heat.ravel()), np.linspace(0, 1, n), atol=1e-6)
    order = np.argsort(scores)  # the same order: highest score, brightest green
    assert np.all(np.diff(snap.heat.ravel()[order]) > 0)


# -- live parameters --------------------------------------------------------------------------
def test_bad_parameters_give_clear_config_errors():
    live = LiveParams(PlaygroundParams(make_target("ring")))
    with pytest.raises(ConfigError, match="batch size must be between 1 and .* \\(got 0\\)"):
        live.update(batch_size=0)
    assert live.get().batch_size == 256  # unchanged
    with pytest.raises(ConfigError, match="learning rate lr_d must be above 0"):
        live.update(lr_d=0.0)
    with pytest.raises(ConfigError, match="Unknown loss 'lsgan'"):
        live.update(loss="lsgan")
    with pytest.raises(ConfigError, match="D steps per G step"):
        live.update(d_steps=0)
    with pytest.raises(ConfigError, match="Draw at least one point"):
        make_target("drawn", [])
    with pytest.raises(ConfigError, match="Unknown distribution 'swirl'"):
        make_target("swirl")
    with pytest.raises(ConfigError, match="needs a target"):
        Playground(PlaygroundParams())


def test_apply_updates_lr_in_place_and_rebuilds_on_a_new_optimiser():
    play = _playground(batch_size=16)
    play.step()
    opt_g = play.opt_g
    play.with_params(lr_g=0.01, lr_d=0.02)
    assert play.opt_g is opt_g and opt_g.param_groups[0]["lr"] == 0.01
    assert play.opt_d.param_groups[0]["lr"] == 0.02
    assert opt_g.state  # Adam's moments kept
    play.with_params(optimiser="rmsprop")
    assert isinstance(play.opt_g, torch.optim.RMSprop)
    assert isinstance(play.opt_d, torch.optim.RMSprop)
    assert play.opt_d.param_groups[0]["lr"] == 0.02
    play.with_params(target=make_target("moons"))
    assert play.real_display.shape == (1000, 2) and play.target.key == "moons"
    play.step()


def test_the_job_reads_live_parameters_between_two_steps():
    play = _playground(batch_size=16)
    live = LiveParams(play.params)
    job = run_playground(play, live)
    first = next(job)
    assert isinstance(first, Metrics) and first.step == 1
    assert isinstance(next(job), Preview)  # the first step always previews
    live.update(lr_g=0.0123, loss="hinge")
    assert play.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)  # not before the next step
    assert next(job).step == 2
    assert play.opt_g.param_groups[0]["lr"] == 0.0123 and play.params.loss == "hinge"
    job.close()


def test_the_job_streams_metrics_and_previews_and_restores_threads():
    threads = torch.get_num_threads()
    play = _playground(batch_size=16)
    outcome = drive(run_playground(play, LiveParams(play.params), max_steps=6), keep_events=True)
    metrics = [e for e in outcome.events if isinstance(e, Metrics)]
    previews = [e for e in outcome.events if isinstance(e, Preview)]
    progress = [e for e in outcome.events if isinstance(e, Progress)]
    assert metrics[0].step == 1 and metrics[-1].step == 6  # first and last step at least
    assert sorted([m.step for m in metrics] + [p.done for p in progress]) == [1, 2, 3, 4, 5, 6]
    assert sum(m.values["steps"] for m in metrics) == 6  # each the mean of its steps
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(metrics[-1].values)
    assert len(previews) >= 2 and previews[-1].data.step == 6  # first and last step at least
    last = metrics[-1].values
    assert last["n_modes"] == 8 and 0 <= last["quality"] <= 1 and last["steps_per_s"] > 0
    assert outcome.result.steps == outcome.result.steps_this_run == 6
    assert torch.get_num_threads() == threads


# -- warnings ---------------------------------------------------------------------------------
def test_oscillation_is_a_swing_not_noise_or_a_trend():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    noise = rng.normal(0, 0.3, 400)
    assert oscillating(1 + 0.5 * np.sin(2 * np.pi * t / 100) + noise)  # 4 periods
    assert not oscillating(1 + noise)
    assert not oscillating(1 + t / 100 + noise)  # a drift
    assert not oscillating(1 + 0.5 * np.sin(2 * np.pi * t / 1000) + noise)  # under half a period
    assert not oscillating([1.0] * 400)


def test_collapse_warning_after_warmup_when_few_modes_are_covered():
    target = make_target("ring")
    diag = Diagnostics(warmup=100)
    collapsed = coverage(np.repeat(target.reference[:3], 50, 0), target)
    assert collapsed.modes_covered == 3
    diag.add_coverage(collapsed)
    diag.add_step(99, 1.0)
    assert not diag.collapse
    diag.add_step(100, 1.0)
    assert diag.collapse
    diag.add_coverage(coverage(np.repeat(target.reference[:4], 50, 0), target))
    assert not diag.collapse  # half is not "fewer than half"


# -- the failure and the fix (measured figures; see the README) -------------------------------
def _coverage_after(steps: int, seed: int, **params) -> list[int]:
    """Modes covered every 100 steps."""
    play = _playground(seed=seed, **params)
    history = []
    for i in range(1, steps + 1):
        play.step()
        if i % 100 == 0:
            history.append(coverage(play.sample(), play.target).modes_covered)
    return history


@pytest.mark.slow
def test_non_saturating_gan_misses_modes_on_the_ring():
    """The failure: the default settings (non-saturating, Adam lr 1e-3, batch 256) leave half
    of the ring uncovered after 3,000 steps (seed 3; over 5 seeds, 2 reached 8 of 8 within
    5,000 steps and the others ended with 4, 5 and 7)."""
    history = _coverage_after(3000, seed=3, loss="non-saturating")
    assert max(history) <= 6 and history[-1] <= 5


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3])
def test_wgan_gp_covers_all_eight_modes_within_1000_steps(seed):
    """The fix: WGAN-GP with 5 critic steps per generator step, penalty weight 1, same Adam
    lr 1e-3 and batch: 8 of 8 modes within 1,000 steps (first after 400-700 for 5 of 5 seeds)."""
    history = _coverage_after(1000, seed=seed, loss="wgan-gp", d_steps=5, gp_weight=1.0)
    assert 8 in history
