"""Where the shipped data, weights and sample images live."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: ``$ADVSTUDIO_RESOURCES``, the copy inside an installed package,
    or the repository's top-level folder (development checkout)."""
    env = os.environ.get("ADVSTUDIO_RESOURCES")
    candidates = [Path(env)] if env else []
    package = Path(__file__).resolve().parents[1]
    candidates += [package / "_resources", package.parent / "resources"]
    for folder in candidates:
        if (folder / "digits" / "digits.npz").is_file():
            return folder
    raise FileNotFoundError(
        "advstudio's resources folder was not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "). Reinstall advstudio or set ADVSTUDIO_RESOURCES."
    )


def sample_images() -> list[Path]:
    """The sample gallery, digits first, then photographs."""
    folder = resources_dir() / "samples"
    files = sorted(folder.glob("*.png"))
    return sorted(files, key=lambda p: (not p.name.startswith("digit_"), p.name))
