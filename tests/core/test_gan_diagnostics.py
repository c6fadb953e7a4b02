"""The GAN tab's badges: each rule fires on the signal it describes, and only then."""

from __future__ import annotations

import math

from advstudio.core.gan.diagnostics import SUSTAIN, WARMUP, WINDOW, GanDiagnostics


def _feed(diag, steps, start=1, **over):
    for s in range(start, start + steps):
        values = {
            "loss_d": 1.2,
            "loss_g": 0.9,
            "d_x": 0.7,
            "d_g_z1": 0.3,
            "d_g_z2": 0.35,
            "diversity": 9.0,
        }
        values.update({k: v(s) if callable(v) else v for k, v in over.items()})
        diag.update(s, values)


def kinds(diag):
    return sorted(f.kind for f in diag.findings())


def test_healthy_training_raises_nothing():
    d = GanDiagnostics()
    _feed(d, WARMUP + 50)
    d.update(WARMUP + 50, {"classes_covered": 9.0})
    assert d.findings() == []


def test_nothing_before_warmup_but_a_sustained_d_win():
    d = GanDiagnostics()
    _feed(d, WARMUP - 10, loss_g=lambda s: 1.0 + 3.0 * math.sin(s), diversity=lambda s: 9 - s / 30)
    assert d.findings() == []  # swinging loss, falling diversity: not yet
    d = GanDiagnostics()
    _feed(d, 100)
    _feed(d, SUSTAIN // 2, start=101, d_g_z1=0.001, d_x=0.99)
    assert d.findings() == [], "a short spike is no win"


def _noisy(centre, spread, period=7):
    """A deterministic wobble around ``centre`` (the D(x) a short CPU run showed)."""
    return lambda s: centre + spread * math.sin(2 * math.pi * s / period)


def test_a_sustained_d_win_in_a_short_run_raises_the_badge():
    # the stream of issue #19's 300-step CPU run: D(x) near 0.93 (dips to 0.8), D(G(z)) about
    # 0.05-0.2, from step 5 on: "D wins" within SUSTAIN steps, long before WARMUP
    d = GanDiagnostics()
    _feed(d, 4, d_x=0.7, d_g_z1=0.6)
    shown_at = None
    for s in range(5, 60):
        _feed(d, 1, start=s, d_x=_noisy(0.93, 0.06), d_g_z1=_noisy(0.09, 0.07, 5))
        if shown_at is None and kinds(d) == ["d-wins"]:
            shown_at = s
    assert shown_at is not None and shown_at <= 5 + SUSTAIN
    (f,) = d.findings()
    assert f.severity == "warning" and f"last {SUSTAIN} steps" in f.message
    # ... and goes when the generator catches up
    _feed(d, SUSTAIN, start=60, d_x=0.7, d_g_z1=0.35)
    assert d.findings() == []


def test_the_sustained_win_reads_each_loss_s_own_signal():
    # least squares: raw outputs at their targets 1 and 0 (the sigmoid says nothing)
    ls = GanDiagnostics("least-squares")
    _feed(ls, SUSTAIN + 5, d_x=0.6, d_g_z1=0.4, out_real=0.97, out_fake=0.05)
    assert kinds(ls) == ["d-wins"]
    # hinge: both margins met; one missed is no win
    hinge = GanDiagnostics("hinge")
    _feed(hinge, SUSTAIN + 5, d_x=0.6, d_g_z1=0.4, out_real=1.3, out_fake=-0.8)
    assert kinds(hinge) == []
    _feed(hinge, SUSTAIN, start=SUSTAIN + 6, d_x=0.6, d_g_z1=0.4, out_real=1.3, out_fake=-1.2)
    assert kinds(hinge) == ["d-wins"]
    # WGAN: a strong critic is no warning
    w = GanDiagnostics("wgan-gp")
    _feed(w, SUSTAIN + 5, d_x=0.99, d_g_z1=0.01, out_real=30.0, out_fake=-10.0)
    assert kinds(w) == []


def test_discriminator_winning():
    d = GanDiagnostics()
    _feed(d, WARMUP + 10, d_g_z1=0.01, d_x=0.98)
    assert kinds(d) == ["d-wins"]


def test_equilibrium_is_information():
    d = GanDiagnostics()
    _feed(d, WARMUP + 10, d_g_z1=0.5, d_x=0.52)
    (f,) = d.findings()
    assert f.kind == "equilibrium" and f.severity == "info"


def test_oscillating_loss_is_unstable():
    d = GanDiagnostics()
    _feed(d, WARMUP + 10, loss_g=lambda s: 1.0 + 3.0 * math.sin(s))
    assert kinds(d) == ["unstable"]


def test_class_coverage_drop_and_diversity_drop_are_collapse():
    d = GanDiagnostics()
    _feed(d, WARMUP)
    d.update(WARMUP, {"classes_covered": 9.0})
    _feed(d, 200, start=WARMUP + 1, diversity=2.0)
    d.update(WARMUP + 200, {"classes_covered": 4.0})
    msgs = [f.message for f in d.findings() if f.kind == "collapse"]
    assert len(msgs) == 2
    assert "Only 4 of 10" in msgs[0] and "alike" in msgs[1]


def test_a_wgan_critic_is_read_through_the_wasserstein_estimate():
    # raw critic outputs far from any probability: sigmoid(D) would say "D wins" throughout
    d = GanDiagnostics("wgan-gp")
    _feed(d, WARMUP, d_x=0.99, d_g_z1=0.01, out_real=30.0, out_fake=-10.0)
    assert kinds(d) == [], "a strong critic is no warning for WGAN"
    _feed(d, 100, start=WARMUP + 1, d_x=0.99, d_g_z1=0.01, out_real=0.5, out_fake=0.0)
    assert kinds(d) == ["equilibrium"]  # W = 0.5, under 5 % of its best (40)
    assert "Wasserstein estimate W = 0.500" in d.findings()[0].message


def test_least_squares_and_hinge_read_d_s_raw_outputs_not_the_sigmoid():
    ls = GanDiagnostics("least-squares")
    _feed(ls, WARMUP + 10, d_x=0.5, d_g_z1=0.5, out_real=0.98, out_fake=0.01)
    assert kinds(ls) == ["d-wins"]
    hinge = GanDiagnostics("hinge")
    _feed(hinge, WARMUP + 10, d_x=0.7, d_g_z1=0.3, out_real=0.05, out_fake=-0.05)
    assert kinds(hinge) == ["equilibrium"]
    _feed(hinge, WINDOW, start=WARMUP + 11, d_x=0.5, d_g_z1=0.5, out_real=1.5, out_fake=-1.4)
    assert kinds(hinge) == ["d-wins"]
