"""The Attack tab's distance-to-boundary and input-defence panels, and Smallest ε, on a colour
model (a tiny 3×32×32 CNN) and a synthetic colour folder data set, driven through the real
widgets to a result that is checked against independent computations."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from advstudio.core.images import load_image, to_tensor
from tests.core.colour_data import CLASSES, colour_classifier, colour_folder

KEY = "test:colour-net"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A colour folder of 20 images and the colour net after 60 plain gradient steps on it
    (by hand: ``torch.optim`` would import ``torch._dynamo``, seconds on a loaded machine)."""
    import torch.nn.functional as F

    root = colour_folder(tmp_path_factory.mktemp("colour") / "shapes", per_class=2, junk=False)
    x, y = _folder_images(root)
    model = colour_classifier()
    model.train()
    for _ in range(60):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.5 * g
    return model.eval(), root


@pytest.fixture
def colour(monkeypatch, lab, build_tab, job_ended, trained):
    """The Attack tab alone with the trained colour net (registry key ``KEY``) and the folder's
    first red square as the current image."""
    from advstudio.core.models import registry

    model, root = trained
    real = registry.load_model
    monkeypatch.setattr(
        registry,
        "load_model",
        lambda key, device="cpu", card=None: model if key == KEY else real(key, device, card),
    )
    tab = build_tab("attack")
    with job_ended(lab.jobs, title="Checking gradients", timeout=30_000):
        lab.state.set_model(KEY, model)
    lab.state.set_image(load_image(root / CLASSES[0] / "0.png"))
    return tab, model, root


def _folder_images(root):
    from advstudio.core.data.sets import load_dataset

    data = load_dataset(f"folder:{root}", "all")
    return data.x, data.y


# --------------------------------------------------------------------------- sweep, robust


def _fgsm_accuracy(model, x, y, eps):
    """FGSM by hand: x + eps sign(d CE / dx), clipped to [0, 1]."""
    import torch.nn.functional as F

    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    with torch.no_grad():
        adv = (x + eps * grad.sign()).clamp(0, 1)
        return int((model(adv).argmax(1) == y).sum()) / len(y)


def test_the_sweep_panel_on_a_colour_folder_equals_fgsm_by_hand(qtbot, colour, tmp_path):
    """The Attack tab's ε sweep on the colour net and a colour folder with a corrupt file:
    the curve is FGSM recomputed by hand, and the panel says what it read and skipped."""
    tab, model, _ = colour
    root = colour_folder(tmp_path / "shapes", per_class=2, junk=True)  # the same 20, + junk
    panel = tab.sweep
    tab.show_panel(panel)
    assert panel.isEnabled()
    panel.data.use_folder(str(root))
    panel.n_images.setValue(20)
    panel.epsilons.setText("0, 0.02, 0.1")
    kind, config = tab.job_config()
    assert kind == "sweep" and config.dataset == f"folder:{root}" and config.n_images == 20
    with qtbot.waitSignal(panel.sweep_done, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)
    x, y = _folder_images(root)
    with torch.no_grad():
        clean = int((model(x).argmax(1) == y).sum()) / 20
    assert clean > 0.5  # the trained net: the curve means something
    expect = [clean] + [_fgsm_accuracy(model, x, y, e) for e in (0.02, 0.1)]
    assert result.curves["fgsm"].accuracy == pytest.approx(expect, abs=1e-9)
    assert panel.status.text().startswith(
        f"test:colour-net: clean accuracy {clean * 100:.1f} % on 20 images"
    )
    note = panel.data.note.text()
    assert "32×32 RGB, 10 classes, 20 images" in note
    assert "2 unreadable file(s) skipped" in note and "broken.png" in note
    assert tab.jobs.store.list_runs(kind="sweep")[0].status == "finished"


def test_the_robust_panel_on_a_colour_folder_equals_a_direct_call(qtbot, colour):
    from advstudio.core.attacks.robust import robust_accuracy

    tab, model, root = colour
    panel = tab.robust
    tab.show_panel(panel)
    assert panel.isEnabled()
    panel.data.use_folder(str(root))
    panel.ensemble.setCurrentIndex(panel.ensemble.findData("fast"))
    panel.n_images.setValue(10)
    panel.steps.setValue(3)
    panel.queries.setValue(30)
    tab.set_eps(8 / 255)
    kind, config = tab.job_config()
    assert kind == "robust" and config.dataset == f"folder:{root}" and config.split == "all"
    with qtbot.waitSignal(panel.evaluated, timeout=120_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: panel.worker.is_done, timeout=10_000)
    from advstudio.core.data.sets import load_dataset

    data = load_dataset(f"folder:{root}", "all", limit=10, seed=config.seed)
    b = config.budget
    direct = robust_accuracy(
        model,
        data.x,
        data.y,
        config.eps,
        config.attacks,
        steps=b.steps,
        target_classes=b.target_classes,
        max_queries=b.max_queries,
        seed=b.seed,
        square_queries=b.square_queries,
    )
    assert result.n_images == 10 and result.outcomes == direct.outcomes
    assert result.robust_accuracy == direct.robust_accuracy
    assert result.clean_accuracy == direct.clean_accuracy
    cells = panel.table.cells()
    assert cells[2][1:] == [
        f"{direct.robust_accuracy * 100:.1f} %",
        f"{direct.outcomes.count('robust')} of 10",
    ]
    assert panel.table.headers()[2] == "Images" and "10 images" in panel.status.text()
    assert "32×32 RGB, 10 classes" in panel.data.note.text()


def test_a_folder_of_another_size_is_resized_only_when_asked_and_the_panel_says_so(
    qtbot, colour, tmp_path
):
    from PIL import Image

    from tests.core.colour_data import shape_image

    tab, _, _ = colour
    rng = np.random.default_rng(3)
    root = tmp_path / "big"
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        Image.fromarray(shape_image(label, rng, size=40)).save(root / name / "0.png")
    panel = tab.sweep
    panel.data.use_folder(str(root))
    panel.n_images.setValue(10)
    panel.epsilons.setText("0")
    panel.data.fit_combo.setCurrentIndex(panel.data.fit_combo.findData("none"))
    worker = panel.start()  # as they are: refused, naming both shapes
    qtbot.waitUntil(lambda: worker.is_done, timeout=30_000)
    assert "images are 40×40 RGB but the model takes 32×32 RGB" in panel.status.text()
    panel.data.fit_combo.setCurrentIndex(panel.data.fit_combo.findData("resize"))
    with qtbot.waitSignal(panel.sweep_done, timeout=60_000) as blocker:
        panel.start()
    assert blocker.args[0].n_images == 10
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)
    note = panel.data.note.text()
    assert "40×40 RGB, 10 classes, 10 images" in note
    assert "fitted to the model: resized 40×40 → 32×32" in note


# --------------------------------------------------------------------------- boundary


def test_boundary_panel_measures_a_colour_folder(qtbot, colour):
    from advstudio.core.attacks.metrics import l2

    tab, model, root = colour
    # every bottom panel takes a data set: none is greyed out for a colour model
    assert all(p.isEnabled() for p in (tab.sweep, tab.robust, tab.boundary, tab.defences))
    panel = tab.boundary
    tab.show_panel(panel)
    panel.source.use_dataset()
    panel.source.data.use_folder(str(root))
    panel.source.n_images.setValue(6)
    panel.cw_steps.setValue(10)
    panel.cw_rounds.setValue(1)
    kind, config = tab.job_config()  # File ▸ Export job as config exports this panel's job
    assert kind == "boundary" and config.dataset == f"folder:{root}" and config.n_images == 6
    with qtbot.waitSignal(panel.measured_set, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)
    assert result.n_images == 6 and result.x.shape == (3, 32, 32)
    x, y = _folder_images(root)
    subset = [i for i in range(len(x)) if torch.equal(x[i], result.x)]
    assert subset  # the first measured image is one of the folder's
    with torch.no_grad():
        assert result.correct[0] == bool(model(result.x[None]).argmax(1) == result.labels[0])
    cells = {c[0]: c for c in panel.table.cells()}
    assert panel.table.headers()[1] == "Median L2"
    for method, name in (("fgsm", "FGSM (smallest ε)"), ("deepfool", "DeepFool"), ("cw", "C&W L2")):
        m = result.methods[method]
        assert len(m.l2) == 6
        flipped = [v for v in m.l2 if not math.isnan(v)]
        median = statistics.median(flipped) if flipped else math.nan
        assert cells[name][1] == ("—" if math.isnan(median) else f"{median:.3f}")
        assert cells[name][3] == f"{sum(m.success)} of {sum(result.correct)}"
        if m.success[0]:
            assert m.l2[0] == pytest.approx(float(l2(result.x[None], m.x_adv[None])[0]), rel=1e-5)
            with torch.no_grad():
                assert int(model(m.x_adv[None]).argmax(1)) != result.labels[0]
            assert panel.thumbs[method].pixels is not None
    assert "6 images" in panel.status.text()
    runs = tab.jobs.store.list_runs(kind="boundary")
    assert runs and runs[0].status == "finished"


def test_boundary_panel_on_the_current_colour_image(qtbot, colour):
    from advstudio.core.attacks.metrics import l2

    tab, model, _ = colour
    panel = tab.boundary
    panel.source.use_dataset(False)
    panel.cw_steps.setValue(10)
    panel.cw_rounds.setValue(1)
    with qtbot.waitSignal(panel.measured, timeout=60_000) as blocker:
        panel.run()
    rows = {r.method: r for r in blocker.args[0]}
    x = to_tensor(tab.state.image)
    assert x.shape == (1, 3, 32, 32)
    r = rows["deepfool"]
    assert r.x_adv.shape == (1, 3, 32, 32)
    if r.success:
        assert r.l2 == pytest.approx(float(l2(x, r.x_adv)[0]), rel=1e-5)
    assert panel.table.headers()[1] == "L2 needed"


# --------------------------------------------------------------------------- input defences


def test_defence_panel_on_a_colour_folder_agrees_with_a_recount(qtbot, colour):
    tab, model, root = colour
    panel = tab.defences
    tab.show_panel(panel)
    tab.set_eps(8 / 255)
    panel.source.use_dataset()
    panel.source.data.use_folder(str(root))
    panel.source.n_images.setValue(20)
    panel.steps.setValue(3)
    panel.set_defence("bit_depth", 3)
    kind, config = tab.job_config()
    assert kind == "defence-eval" and config.defence == "bit_depth" and config.parameter == 3
    with qtbot.waitSignal(panel.evaluated, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    res = blocker.args[0]
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)
    x, y = _folder_images(root)  # all 20 images: the same set, in another order
    with torch.no_grad():
        clean = float((model(torch.round(x * 7) / 7).argmax(1) == y).float().mean())
        plain = float((model(x).argmax(1) == y).float().mean())
    assert res.n_images == 20
    assert res.accuracy("clean") == pytest.approx(clean)
    assert res.accuracy("undefended") == pytest.approx(plain)
    assert set(res.right) == {"plain", "bpda"} and not res.errors
    for x_adv in res.x_adv.values():
        assert x_adv.shape == (3, 32, 32) and float((x_adv - res.x).abs().max()) <= 8 / 255 + 1e-6
    assert f"accuracy {clean * 100:.1f} %" in panel.views["clean"].caption.text()
    assert f"BPDA {res.accuracy('bpda') * 100:.1f} %" in panel.status.text()
    assert panel.views["bpda"].pixels is not None
    runs = tab.jobs.store.list_runs(kind="defence-eval")
    assert runs and runs[0].status == "finished"


def test_jpeg_bpda_on_the_current_colour_image_stays_in_the_ball(qtbot, colour):
    tab, _, _ = colour
    panel = tab.defences
    panel.source.use_dataset(False)
    tab.set_eps(0.05)
    panel.set_defence("jpeg", 75)
    with qtbot.waitSignal(panel.compared, timeout=60_000) as blocker:
        panel.run()
    c = blocker.args[0]
    x = to_tensor(tab.state.image)
    assert c.plain.error is not None  # no gradient through JPEG, in colour too
    assert c.bpda.x_adv.shape == (1, 3, 32, 32)
    assert float((c.bpda.x_adv - x).abs().max()) <= 0.05 + 1e-6
    assert panel.views["bpda"].pixels.shape == (32, 32, 3)


def test_detector_fits_on_the_chosen_colour_folder(qtbot, colour):
    from advstudio.core.attacks.transforms import (
        BitDepth,
        FeatureSqueezingDetector,
        MedianSmoothing,
    )

    tab, model, root = colour
    panel = tab.defences
    panel.source.data.use_folder(str(root))
    panel.rate.setValue(0.1)
    with qtbot.waitSignal(panel.detector_checked, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.fit_button, Qt.MouseButton.LeftButton)
    check = blocker.args[0]
    x, _ = _folder_images(root)
    detector = FeatureSqueezingDetector(model, (BitDepth(5), MedianSmoothing(2)))  # colour set
    expected = float(torch.quantile(detector.score(x).double(), 0.9))
    assert check.n_clean == 20 and check.threshold == pytest.approx(expected, abs=1e-6)
    assert panel.threshold_row.text().startswith(f"{expected:.4f}")
    assert "of 20 clean images" in panel.threshold_row.text()


# --------------------------------------------------------------------------- smallest eps


def test_smallest_eps_on_a_colour_image(qtbot, colour):
    from advstudio.core.attacks.metrics import minimal_epsilon

    tab, model, _ = colour
    x = to_tensor(tab.state.image)
    label = model.predict(x, k=1)[0].indices[0]
    expected = minimal_epsilon(model, x, torch.tensor([label]))
    if expected is None:
        pytest.skip("FGSM cannot flip this image of the random net")
    with qtbot.waitSignal(tab.attacked, timeout=60_000) as blocker:
        qtbot.mouseClick(tab.min_eps_button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    assert tab.eps == pytest.approx(expected, abs=5e-4)  # the ε box shows 3 decimals
    assert outcome.x_adv.shape == (1, 3, 32, 32)
    assert f"{expected:.4f}" in tab.message.text()


# --------------------------------------------------------------------------- image gallery


def test_the_image_gallery_offers_samples_of_the_chosen_data_set(qtbot, lab, settings, trained):
    from advstudio.core.data.sets import load_dataset
    from advstudio.ui.image.tab import GALLERY_SAMPLES, ImageTab

    _, root = trained
    tab = ImageTab(lab.state, lab.jobs, lab.models, settings)
    qtbot.addWidget(tab)
    shipped = tab.gallery.count()
    assert tab.samples_from is not None  # PyTorch is loaded: the picker is there
    with qtbot.waitSignal(tab.samples_from.changed):
        tab.samples_from.use_folder(str(root))
    qtbot.waitUntil(lambda: tab._samples is not None and tab.gallery.count() == 20)
    data = load_dataset(f"folder:{root}", "all", limit=GALLERY_SAMPLES, seed=0)
    item = tab.gallery.item(3)
    assert item.text() == data.class_names[int(data.y[3])]
    with qtbot.waitSignal(tab.image_loaded):
        tab.gallery.itemClicked.emit(item)
    image = lab.state.image
    assert image.pixels.shape == (32, 32, 3)
    assert np.allclose(image.pixels, data.x[3].numpy().transpose(1, 2, 0))
    tab.samples_from.set_dataset("digits")  # back to the shipped samples
    assert tab.gallery.count() == shipped and tab._samples is None
    qtbot.waitUntil(lambda: not lab.jobs.active)
