"""GAN checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a dict of tensors and plain values (strings, numbers, lists, dicts) saved with
``torch.save``, so ``torch.load(..., weights_only=True)`` can read it: the RNG state is stored as
the ByteTensor torch gives, never as a Python object. Its header says what it holds::

    format, version, arch, image_size, channels, latent_dim, step

and the trainer adds the state (see ``GanTrainer.state_dict``): the networks' own state dicts
(never a ``DistributedDataParallel`` wrapper's ``module.`` keys) and the global step and random
state, so a checkpoint of a data-parallel run resumes on any number of processes, one included.
Writing goes to a temporary file in the same folder, then ``os.replace``: a crash or cancel never
leaves a half-written checkpoint in place of the last good one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advstudio.core.atomic import atomic_torch_save
from advstudio.core.errors import CheckpointError
from advstudio.core.gan.networks import build_networks
from advstudio.core.training import read_checkpoint

FORMAT = "advstudio-gan-checkpoint"
VERSION = 1
GEOMETRY = (
    "arch",
    "image_size",
    "channels",
    "latent_dim",
    "num_classes",
    "spectral_norm",
    "d_batch_norm",
    "minibatch_std",
    "width",
)
# what a checkpoint written before the network options were recorded was built with
OPTION_DEFAULTS = {
    "num_classes": 0,
    "spectral_norm": False,
    "d_batch_norm": True,
    "minibatch_std": False,
    "width": 64,
}
ARCH_NAMES = {"dcgan": "DCGAN", "gan": "plain GAN (MLP)"}


def describe_geometry(meta: dict[str, Any]) -> str:
    """E.g. ``"DCGAN, 1x28x28 images, latent 100"``."""
    arch = ARCH_NAMES.get(meta.get("arch"), repr(meta.get("arch")))
    options = [
        f"conditional on {meta['num_classes']} classes" if meta.get("num_classes") else "",
        "spectral norm in D" if meta.get("spectral_norm") else "",
        "minibatch std in D" if meta.get("minibatch_std") else "",
        "D without BatchNorm"
        if meta.get("arch") == "dcgan" and meta.get("d_batch_norm") is False
        else "",
    ]
    return ", ".join(
        [
            f"{arch}, {meta.get('channels')}x{meta.get('image_size')}x"
            f"{meta.get('image_size')} images, latent {meta.get('latent_dim')}",
            *filter(None, options),
        ]
    )


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (a header plus state, see the module doc) to ``path`` atomically."""
    atomic_torch_save({"format": FORMAT, "version": VERSION, **payload}, path)


def load_checkpoint(
    path: str | os.PathLike, expect: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read a checkpoint (tensors on the CPU).

    ``expect`` maps header fields (``arch``, ``image_size``, ``channels``, ``latent_dim``) to the
    values the caller needs; a mismatch raises :class:`CheckpointError` saying both.
    """
    ckpt = read_checkpoint(path, format=FORMAT, version=VERSION, name="GAN checkpoint")
    ckpt = {**OPTION_DEFAULTS, **ckpt}
    if expect:
        wrong = [k for k in GEOMETRY if k in expect and ckpt.get(k) != expect[k]]
        if wrong:
            raise CheckpointError(
                f"{Path(path).name} holds a {describe_geometry(ckpt)}, but this run is a "
                f"{describe_geometry({**ckpt, **expect})} (different {', '.join(wrong)}); "
                "choose another checkpoint file or match the settings"
            )
    return ckpt


def load_generator(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The generator of a checkpoint (its moving average when it has one), in eval mode, and
    the checkpoint's header."""
    ckpt = load_checkpoint(path)
    generator, _ = build_networks(
        ckpt["arch"],
        ckpt["latent_dim"],
        ckpt["channels"],
        ckpt["image_size"],
        num_classes=ckpt["num_classes"],
        width=ckpt["width"],
    )
    try:
        generator.load_state_dict(ckpt.get("generator_ema", ckpt["generator"]))
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"the generator weights in {Path(path).name} do not fit a "
            f"{describe_geometry(ckpt)}: {str(exc).splitlines()[0]}"
        ) from exc
    header = {k: ckpt[k] for k in (*GEOMETRY, "step")}
    return generator.to(device).eval(), header
