"""The GAN tab's badges: each rule fires on the signal it describes, and only then."""

from __future__ import annotations

import math

from advstudio.core.gan.diagnostics import WARMUP, WINDOW, GanDiagnostics


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


def test_nothing_before_warmup():
    d = GanDiagnostics()
    _feed(d, WARMUP - 10, d_g_z1=0.001, d_x=0.99)
    assert d.findings() == []


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
