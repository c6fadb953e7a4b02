"""GAN checkpoints: atomic writes, weights_only loading, exact resume, wrong-architecture errors."""

from __future__ import annotations

import pickle

import pytest
import torch

import advstudio.core.gan.checkpoint as checkpoint_mod
from advstudio.core.errors import CheckpointError
from advstudio.core.gan import GanConfig
from advstudio.core.gan.checkpoint import load_checkpoint, load_generator, save_checkpoint
from advstudio.core.gan.train import train_gan
from advstudio.core.jobs import Log, Metrics, drive

TINY = dict(batch_size=8, eval_every=0, preview_rate=0.0)


def _step_metrics(events):
    return {e.step: e.values for e in events if isinstance(e, Metrics)}


def test_resume_repeats_an_uninterrupted_run(tmp_path):
    # DCGAN: BatchNorm buffers, both Adam states, noise RNG and data order must all come back
    base = dict(arch="dcgan", steps=4, **TINY)
    full = drive(
        train_gan(GanConfig(**base, checkpoint_path=str(tmp_path / "full.pt"))), keep_events=True
    )
    part = tmp_path / "part.pt"
    drive(train_gan(GanConfig(**{**base, "steps": 2}, checkpoint_path=str(part))))
    assert load_checkpoint(part)["step"] == 2
    resumed = drive(
        train_gan(GanConfig(**base, checkpoint_path=str(part), resume=True)), keep_events=True
    )
    assert any(
        isinstance(e, Log) and "Resumed" in e.text and "step 2" in e.text for e in resumed.events
    )
    want, got = _step_metrics(full.events), _step_metrics(resumed.events)
    assert sorted(got) == [3, 4]
    assert got[3] == want[3] and got[4] == want[4]  # bit for bit
    for k, v in full.result.generator_state.items():
        assert torch.equal(v, resumed.result.generator_state[k]), k
    a, b = load_checkpoint(tmp_path / "full.pt"), load_checkpoint(part)
    assert torch.equal(a["rng_state"], b["rng_state"]) and a["step"] == b["step"] == 4
    for k, v in a["discriminator"].items():
        assert torch.equal(v, b["discriminator"][k]), k


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    path = tmp_path / "g.pt"
    drive(train_gan(GanConfig(arch="gan", steps=1, checkpoint_path=str(path), **TINY)))
    raw = torch.load(path, weights_only=True)  # no arbitrary objects inside
    assert {
        "generator",
        "discriminator",
        "opt_g",
        "opt_d",
        "step",
        "fixed_noise",
        "rng_state",
        "arch",
    } <= set(raw)
    assert raw["rng_state"].dtype == torch.uint8 and raw["fixed_noise"].shape == (64, 100)
    g, header = load_generator(path)
    assert header == {
        "arch": "gan",
        "image_size": 28,
        "channels": 1,
        "latent_dim": 100,
        "step": 1,
        "num_classes": 0,
        "spectral_norm": False,
        "d_batch_norm": True,
        "minibatch_std": False,
        "width": GanConfig.width,  # recorded though the MLP ignores it
    }
    assert g(torch.randn(2, 100)).shape == (2, 1, 28, 28) and not g.training


def test_resume_from_another_architecture_is_refused(tmp_path):
    path = tmp_path / "mlp.pt"
    drive(train_gan(GanConfig(arch="gan", steps=1, checkpoint_path=str(path), **TINY)))
    cfg = GanConfig(arch="dcgan", steps=2, checkpoint_path=str(path), resume=True, **TINY)
    with pytest.raises(CheckpointError, match=r"holds a plain GAN \(MLP\).*this run is a DCGAN"):
        drive(train_gan(cfg))
    cfg = GanConfig(
        arch="gan", latent_dim=64, steps=2, checkpoint_path=str(path), resume=True, **TINY
    )
    with pytest.raises(CheckpointError, match="different latent_dim"):
        drive(train_gan(cfg))


def test_resume_without_a_file_starts_fresh(tmp_path):
    path = tmp_path / "new.pt"
    cfg = GanConfig(arch="gan", steps=1, checkpoint_path=str(path), resume=True, **TINY)
    out = drive(train_gan(cfg), keep_events=True)
    assert any(isinstance(e, Log) and "starting from step 0" in e.text for e in out.events)
    assert load_checkpoint(path)["step"] == 1


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": checkpoint_mod.FORMAT, "x": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="not a readable advstudio GAN checkpoint"):
        load_checkpoint(evil)
    other = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an advstudio GAN checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert load_checkpoint(path)["step"] == 1


def test_cancel_mid_run_leaves_no_temp_file(tmp_path):
    path = tmp_path / "run.pt"
    cfg = GanConfig(arch="gan", steps=50, checkpoint_path=str(path), checkpoint_every=1, **TINY)
    job = train_gan(cfg)
    steps = 0
    while steps < 3:
        if isinstance(next(job), Metrics):
            steps += 1
    job.close()  # what the driver does on cancel: GeneratorExit at the yield
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert load_checkpoint(path)["step"] == 3


def test_resume_of_the_new_options_repeats_an_uninterrupted_run(tmp_path):
    # conditional, spectral norm (its power-iteration vectors are buffers), hinge, R1, EMA
    base = dict(
        steps=4,
        width=8,
        conditional=True,
        spectral_norm=True,
        loss="hinge",
        r1_gamma=1.0,
        ema_decay=0.9,
        minibatch_std=True,
        **TINY,
    )
    full = drive(train_gan(GanConfig(**base)), keep_events=True)
    part = tmp_path / "part.pt"
    drive(train_gan(GanConfig(**{**base, "steps": 2}, checkpoint_path=str(part))))
    assert "generator_ema" in load_checkpoint(part)
    resumed = drive(
        train_gan(GanConfig(**base, checkpoint_path=str(part), resume=True)), keep_events=True
    )
    want, got = _step_metrics(full.events), _step_metrics(resumed.events)
    assert got[3] == want[3] and got[4] == want[4]
    for k, v in full.result.generator_state.items():  # the moving average
        assert torch.equal(v, resumed.result.generator_state[k]), k
    with pytest.raises(CheckpointError, match="different spectral_norm"):
        drive(
            train_gan(
                GanConfig(
                    **{**base, "spectral_norm": False}, checkpoint_path=str(part), resume=True
                )
            )
        )


def test_a_checkpoint_from_before_the_options_still_loads_and_resumes(tmp_path):
    path = tmp_path / "old.pt"
    # version 1's DCGAN: width 64, written before the width was recorded
    drive(train_gan(GanConfig(steps=1, width=64, checkpoint_path=str(path), **TINY)))
    raw = torch.load(path, weights_only=True)
    for key in checkpoint_mod.OPTION_DEFAULTS:  # what version 1 wrote before this release
        del raw[key]
    torch.save(raw, path)
    g, header = load_generator(path)
    assert header["width"] == 64 and header["num_classes"] == 0
    out = drive(
        train_gan(
            GanConfig(
                steps=2, width=64, checkpoint_path=str(path), resume=True, ema_decay=0.5, **TINY
            )
        )
    )
    assert out.result.step == 2
