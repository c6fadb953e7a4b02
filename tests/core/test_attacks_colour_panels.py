"""The Attack tab's boundary and input-defence measures on colour: the transforms keep shape and
channels, BPDA stays in the eps-ball, and the data-set jobs (``boundary``, ``defence-eval``)
run a tiny 3×32×32 net on a synthetic colour folder, checked against independent computations
(Pillow's JPEG, rounding by hand, norms, predictions along the DeepFool segment)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from advstudio.core.attacks.boundary import BoundaryConfig, boundary_distances, run_boundary
from advstudio.core.attacks.defence_eval import (
    DefenceEvalConfig,
    defence_accuracy,
    run_defence_eval,
)
from advstudio.core.attacks.lab import compare_defence
from advstudio.core.attacks.transforms import (
    BitDepth,
    GaussianNoise,
    JpegCompression,
    MedianSmoothing,
    RandomResizePad,
)
from advstudio.core.data.sets import load_dataset
from advstudio.core.jobs import Log, drive
from tests.core.colour_data import colour_classifier, colour_folder

KEY = "test:colour-net"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("shapes"), per_class=2, junk=False)


@pytest.fixture(scope="module")
def data(folder):
    return load_dataset(f"folder:{folder}", "all")


@pytest.fixture(scope="module")
def trained(data):
    """The colour net after 60 Adam steps on the folder (it gets most images right)."""
    model = colour_classifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()


@pytest.fixture
def registry(monkeypatch, trained):
    from advstudio.core.models import registry as reg

    real = reg.load_model
    monkeypatch.setattr(
        reg,
        "load_model",
        lambda key, device="cpu", card=None: trained if key == KEY else real(key, device, card),
    )
    return trained


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    "transform",
    [JpegCompression(60), BitDepth(3), MedianSmoothing(2), RandomResizePad(6), GaussianNoise(0.1)],
    ids=lambda t: type(t).__name__,
)
@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 3, 21, 30)])
def test_transforms_keep_shape_channels_and_range_in_colour(transform, shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    out = transform(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # the channels stay apart: a red-only image stays (mostly) red
    red = torch.zeros(shape)
    red[:, 0] = 0.9
    back = transform(red)
    assert float(back[:, 0].mean()) > 3 * float(back[:, 1:].mean()) + 0.2


def test_colour_jpeg_is_pillows_rgb_round_trip():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 24)
    out = JpegCompression(50)(x)
    for i in range(2):
        arr = np.rint(x[i].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=50)
        buf.seek(0)
        back = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255
        assert torch.allclose(out[i], torch.from_numpy(back.transpose(2, 0, 1)), atol=1e-6)


def test_colour_bit_depth_and_median_match_hand_computations():
    torch.manual_seed(2)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(BitDepth(2)(x), torch.round(x * 3) / 3)
    med = MedianSmoothing(3)(x)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    for c in range(3):  # each channel filtered on its own
        window = padded[0, c, 4:7, 5:8].flatten()  # rows 3-5, cols 4-6
        assert med[0, c, 4, 5] == window.sort().values[4]


# --------------------------------------------------------------------------- BPDA on colour


def test_bpda_on_a_colour_image_stays_in_the_eps_ball(trained, data):
    x, label = data.x[:1], int(data.y[0])
    c = drive(
        compare_defence(trained, x, defence="bit_depth", parameter=3, eps=8 / 255, label=label)
    ).result
    for attack in (c.plain, c.bpda):
        assert attack.x_adv.shape == (1, 3, 32, 32)
        assert float((attack.x_adv - x).abs().max()) <= 8 / 255 + 1e-6
        assert float(attack.x_adv.min()) >= 0 and float(attack.x_adv.max()) <= 1


@pytest.mark.parametrize("defence, parameter", [("bit_depth", 3), ("noise", 10), ("jpeg", 75)])
def test_defence_accuracy_on_colour_agrees_with_a_hand_recount(trained, data, defence, parameter):
    x, y = data.x[:8], data.y[:8]
    eps = 8 / 255
    res = drive(
        defence_accuracy(
            trained, x, y, defence=defence, parameter=parameter, eps=eps, steps=5, batch_size=3
        )
    ).result
    assert res.n_images == 8 and len(res.clean) == 8 and len(res.undefended) == 8
    with torch.no_grad():
        assert res.undefended == (trained(x).argmax(1) == y).tolist()
        if defence == "bit_depth":  # the defence by hand: 3 bits = 7 levels above 0
            assert res.clean == (trained(torch.round(x * 7) / 7).argmax(1) == y).tolist()
    for x_adv in res.x_adv.values():
        assert x_adv.shape == (3, 32, 32) and float((x_adv - x[0]).abs().max()) <= eps + 1e-6
    assert "bpda" in res.right and len(res.right["bpda"]) == 8
    assert ("eot" in res.right) == (defence == "noise")
    if defence == "jpeg":  # no gradient through JPEG: plain PGD cannot run, BPDA can
        assert "plain" in res.errors and "plain" not in res.right
    else:
        assert len(res.right["plain"]) == 8
    assert res.accuracy("bpda") <= res.accuracy("clean") + 1e-9 or defence == "noise"


def test_the_defence_eval_job_takes_an_in_memory_module(folder, trained):
    """As ``advstudio.open`` hands a notebook's module to the jobs: the bare network and its
    card, no registry key or file."""
    from tests.core.colour_data import CLASSES

    config = DefenceEvalConfig(
        model=trained.net,
        card={"input_shape": [3, 32, 32], "classes": CLASSES},
        defence="median",
        parameter=2,
        eps=0.03,
        steps=3,
        n_images=6,
        dataset=f"folder:{folder}",
        split="all",
        device="cpu",
    )
    assert config.model.startswith("memory:")
    run = drive(run_defence_eval(config), keep_events=True)
    res = run.result
    assert res.n_images == 6 and set(res.right) == {"plain", "bpda"}
    assert any(isinstance(e, Log) and e.text.startswith("data:") for e in run.events)


# --------------------------------------------------------------------------- boundary


def _crossing(model, x, x_adv, label, points=200):
    """Where along x -> x_adv the prediction first leaves ``label``, as a fraction of the way."""
    t = torch.linspace(0, 1, points + 1)[:, None, None, None]
    with torch.no_grad():
        pred = model(x + t * (x_adv - x)).argmax(1)
    flipped = (pred != label).nonzero()
    return float(t[flipped[0, 0]]) if len(flipped) else None


def test_boundary_distances_on_colour_are_per_image_norms(trained, data):
    x, y = data.x[:6], data.y[:6]
    res = drive(boundary_distances(trained, x, y, cw_steps=20, cw_search_steps=2, batch_size=4))
    res = res.result
    assert res.n_images == 6 and res.labels == y.tolist()
    with torch.no_grad():
        assert res.correct == (trained(x).argmax(1) == y).tolist()
    for method in ("fgsm", "deepfool", "cw"):
        m = res.methods[method]
        assert len(m.l2) == len(m.linf) == len(m.success) == 6
        for i in range(6):
            assert np.isnan(m.l2[i]) == (not m.success[i])
        if m.success[0]:  # the kept example's norms are the first image's
            delta = (m.x_adv - x[0]).flatten()
            assert m.l2[0] == pytest.approx(float(delta.norm()), rel=1e-5)
            assert m.linf[0] == pytest.approx(float(delta.abs().max()), rel=1e-5)
    deepfool = res.methods["deepfool"]
    assert deepfool.success[0]
    # DeepFool lands just past the boundary: the prediction flips near the end of its step
    t = _crossing(trained, x[0], deepfool.x_adv, int(y[0]))
    assert t is not None and t >= 0.85
    # an L-inf step (FGSM) needs more L2 than the minimal-L2 methods, in median
    assert res.methods["cw"].median() <= res.methods["fgsm"].median()


def test_the_boundary_job_runs_on_a_colour_folder(folder, registry):
    config = BoundaryConfig(
        model=KEY,
        n_images=5,
        methods=("deepfool", "fgsm"),
        dataset=f"folder:{folder}",
        split="all",
        device="cpu",
    )
    run = drive(run_boundary(config), keep_events=True)
    res = run.result
    assert set(res.methods) == {"deepfool", "fgsm"} and res.n_images == 5
    assert res.x.shape == (3, 32, 32)
    assert any(isinstance(e, Log) and e.text.startswith("data:") for e in run.events)
    assert 0 <= res.success_rate("deepfool") <= 1


# --------------------------------------------------------------------------- the ε slider


def test_the_slider_path_is_one_forward_and_agrees_with_the_full_measure(trained, data):
    from advstudio.core.attacks.lab import AttackSpec, attack_image, fgsm_at

    x = data.x[:1]
    first = drive(attack_image(trained, x, AttackSpec(eps=2 / 255))).result
    calls = []
    hook = trained.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        quick = fgsm_at(trained, first, 6 / 255, check_saving=False)
    finally:
        hook.remove()
    full = fgsm_at(trained, first, 6 / 255)
    assert len(calls) == 1 and quick.survival is None and full.survival is not None
    assert torch.equal(quick.x_adv, full.x_adv) and quick.after.indices == full.after.indices
    assert quick.after.probs == pytest.approx(full.after.probs, abs=1e-6)
    for field in ("pred_before", "pred_after", "success", "l0"):
        assert getattr(quick.report, field) == getattr(full.report, field), field
    for field in ("conf_before", "conf_after", "linf", "l2", "psnr", "ssim"):
        assert getattr(quick.report, field) == pytest.approx(getattr(full.report, field), rel=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 40, 36), (1, 3, 12, 1030)])  # products; convolution
def test_ssim_equals_a_grouped_gaussian_convolution(shape):
    from advstudio.core.attacks.metrics import gaussian_window, ssim

    gen = torch.Generator().manual_seed(3)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    c = shape[1]
    w = gaussian_window(11, 1.5).expand(c, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    expected = m.flatten(2).mean(2).mean(1)
    assert torch.allclose(ssim(x, y).double(), expected, atol=1e-6)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "text",
    [
        'kind = "boundary"\nmodel = "digits-cnn"\nmethods = ["deepfool", "fgsm"]\n',
        'kind = "defence-eval"\nmodel = "digits-cnn"\ndefence = "median"\nparameter = 2\n',
    ],
    ids=["boundary", "defence-eval"],
)
def test_the_new_kinds_run_headless_as_a_dry_run(tmp_path, monkeypatch, text):
    import json

    from advstudio.cli import EXIT_OK, main

    monkeypatch.setenv("ADVSTUDIO_HOME", str(tmp_path / "home"))
    cfg = tmp_path / "job.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main([str(cfg), "--dry-run", "--quiet", "--device", "cpu", "--out", str(out)]) == EXIT_OK
    result = json.loads((out / "result.json").read_text())["result"]
    assert result["n_images"] == 4
    if "boundary" in text:
        assert set(result["methods"]) == {"deepfool", "fgsm"}
        assert len(result["methods"]["deepfool"]["l2"]) == 4
    else:
        assert len(result["clean"]) == 4 and set(result["right"]) == {"plain", "bpda"}
