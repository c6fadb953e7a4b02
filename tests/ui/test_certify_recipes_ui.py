"""The Defence tab offers the certification recipes with their fields, and the window holds the
Certify tab."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "key, fields, config",
    [
        ("noise", {"sigma"}, {"sigma": 0.5}),
        ("ibp", {"ibp_warmup", "ibp_ramp"}, {"ibp_warmup_steps": 30, "ibp_ramp_steps": 90}),
        ("trades", {"trades_beta", "pgd_steps"}, {"trades_beta": 3.0, "pgd_steps": 5}),
    ],
)
def test_each_recipe_shows_its_fields_and_builds_its_config(build_tab, key, fields, config):
    tab = build_tab("defence")
    tab.recipe.setCurrentIndex(tab.recipe.findData(key))
    own = {"sigma", "trades_beta", "ibp_warmup", "ibp_ramp", "pgd_steps", "alpha_mix"}
    assert {n for n in own if tab.rows[n].isVisibleTo(tab)} == fields
    widgets = {
        "sigma": tab.sigma,
        "ibp_warmup_steps": tab.ibp_warmup,
        "ibp_ramp_steps": tab.ibp_ramp,
        "trades_beta": tab.trades_beta,
        "pgd_steps": tab.pgd_steps,
    }
    for name, value in config.items():
        widgets[name].setValue(value)
    kind, built = tab.config()
    assert kind == "train" and built.recipe == key
    assert {name: getattr(built, name) for name in config} == config


def test_the_window_builds_the_certify_tab_after_defence(qtbot, window):
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert names[names.index("Defence") + 1] == "Certify"
    qtbot.waitUntil(lambda: window.certify_tab is not None, timeout=10_000)
    assert window.certify_host.content is window.certify_tab
