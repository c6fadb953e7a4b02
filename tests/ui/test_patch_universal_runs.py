"""The Patch and Universal panels run the ``patch`` / ``universal`` job kinds through the run
store, as advstudio-run does: every run is in the Runs tab's store with the config it ran,
its recorded patch / perturbation is the one the panel shows, a curve of the panel's own patch
records the settings the patch was trained with, and File ▸ Export job as config exports the
shown panel's job."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.core.colour_data import colour_classifier, colour_folder, shape_image


@pytest.fixture
def colour_tab(lab, build_tab, job_ended, tmp_path, monkeypatch):
    """The Attack tab alone with the tests' colour CNN, a colour image and a folder of shapes."""
    from advstudio.core.images import load_image
    from advstudio.ui.attack import patch_panel, universal_panel

    monkeypatch.setattr(patch_panel, "TRAIN", 12)
    monkeypatch.setattr(patch_panel, "TEST", 12)
    monkeypatch.setattr(universal_panel, "FIT", 8)
    monkeypatch.setattr(universal_panel, "HELD_OUT", 12)
    tab = build_tab("attack")
    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.state.set_model("test:colour-net", colour_classifier())
    png = tmp_path / "shape.png"
    Image.fromarray(shape_image(2, np.random.default_rng(1), 40)).save(png)
    lab.state.set_image(load_image(png))
    tab.root = colour_folder(tmp_path / "shapes", per_class=4, junk=False)
    return tab


def _runs(tab, kind):
    store = tab.jobs.store
    return store, [r for r in store.list_runs(kind=kind)]


def test_patch_runs_are_recorded_with_their_config(qtbot, colour_tab):
    from advstudio.core.jobkinds import build_config

    tab = colour_tab
    panel = tab.patch
    panel.data.use_folder(str(tab.root))
    panel.steps.setValue(2)
    panel.area.setValue(20)
    with qtbot.waitSignal(panel.trained, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    store, runs = _runs(tab, "patch")
    assert len(runs) == 1 and runs[0].status == "finished"
    kind, values = store.rerun_config(runs[0].id)
    config = build_config(kind, values)
    assert config == panel.config()  # what Train patch ran is what the run keeps
    assert (config.model, config.steps, config.area) == ("test:colour-net", 2, 0.2)
    assert config.dataset == f"folder:{tab.root}" and config.n_train == 12
    recorded = torch.tensor(store.read_result(runs[0].id)["patch"], dtype=torch.float32)
    assert torch.equal(recorded, res.patch) and torch.equal(res.patch, panel.result.patch)
    assert res.patch.shape == (3, 14, 14)  # sqrt(0.2 * 1024) = 14.3

    # the curve of this patch, after the controls moved on: the run keeps the trained settings
    panel.steps.setValue(7)
    panel.sizes.setText("5, 20")
    with qtbot.waitSignal(panel.size_curve, timeout=60_000) as blocker:
        panel.run_size_curve()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    curve = blocker.args[0]
    store, runs = _runs(tab, "patch")
    assert len(runs) == 2 and all(r.status == "finished" for r in runs)
    newest = max(runs, key=lambda r: r.created)
    kind, values = store.rerun_config(newest.id)
    config = build_config(kind, values)
    assert (config.curve, config.areas, config.steps) == ("rescale", (0.05, 0.2), 2)
    result = store.read_result(newest.id)
    assert result["size_success"] == curve.success and result["patch"] == res.patch.tolist()
    assert "not trained again" in store.read_log(newest.id)

    tab.show_panel(panel)
    kind, config = tab.job_config()
    assert kind == "patch" and config.steps == 7 and config.curve == "none"


def test_universal_runs_are_recorded_with_their_config(qtbot, colour_tab):
    from advstudio.core.jobkinds import build_config

    tab = colour_tab
    panel = tab.universal
    panel.data.use_folder(str(tab.root))
    panel.target.setCurrentIndex(panel.target.findData(2))
    tab.set_eps(0.05)
    with qtbot.waitSignal(panel.fitted, timeout=60_000) as blocker:
        panel.run()
    res = blocker.args[0]
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    store, runs = _runs(tab, "universal")
    assert len(runs) == 1 and runs[0].status == "finished"
    config = build_config(*store.rerun_config(runs[0].id))
    assert config == panel.config() and (config.eps, config.target) == (0.05, 2)
    result = store.read_result(runs[0].id)
    v = torch.tensor(result["v"], dtype=torch.float32)
    assert torch.equal(v, res.v) and float(v.abs().max()) <= 0.05 + 1e-7
    assert result["held_out_rate"] == res.held_out_rate and result["n_held"] == 12

    panel.curve_mode.setCurrentIndex(panel.curve_mode.findData("rescale"))
    panel.epsilons.setText("0.02, 0.05")
    tab.set_eps(0.1)  # the tab's ε moved on; the curve is of the fitted perturbation
    with qtbot.waitSignal(panel.eps_curve, timeout=60_000) as blocker:
        panel.run_eps_curve()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=10_000)
    curve = blocker.args[0]
    store, runs = _runs(tab, "universal")
    newest = max(runs, key=lambda r: r.created)
    config = build_config(*store.rerun_config(newest.id))
    assert (config.curve, config.eps, config.epsilons) == ("rescale", 0.05, (0.02, 0.05))
    assert store.read_result(newest.id)["held_out"] == curve.held_out

    tab.show_panel(panel)
    kind, config = tab.job_config()
    assert kind == "universal" and config.eps == 0.1 and config.target == 2
