"""Train the two built-in digit classifiers on the bundled digits and write their weights.

    uv run python resources/scripts/train_builtin.py

Writes ``resources/models/<key>.pt`` (a plain ``state_dict`` of the net, loadable with
``weights_only=True``) and ``resources/models/builtin.json`` (normalisation, test accuracy,
training recipe). Recipe as in ``shared/REFERENCE_FIGURES.md``: Adam 1e-3, batch 64, 15 epochs,
seed 0, 2 CPU threads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from advstudio.core.data import batches, load_digits
from advstudio.core.models.architectures import ARCHITECTURES

OUT = Path(__file__).resolve().parents[1] / "models"
MEAN, STD = 0.1307, 0.3081
EPOCHS, BATCH, LR, SEED = 15, 64, 1e-3, 0


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net((xb - MEAN) / STD).argmax(1) for xb, _ in batches(x, y, 500)])
    return (pred == y).float().mean().item()


def train(key: str) -> dict:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    net = ARCHITECTURES[key]()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        net.train()
        for xb, yb in batches(x, y, BATCH, shuffle=True, generator=gen):
            opt.zero_grad()
            F.cross_entropy(net((xb - MEAN) / STD), yb).backward()
            opt.step()
        print(f"{key} epoch {epoch + 1}: test acc {accuracy(net, xt, yt):.4f}", flush=True)
    seconds = time.perf_counter() - t0
    acc = accuracy(net, xt, yt)
    torch.save(net.state_dict(), OUT / f"{key}.pt")
    return {
        "test_accuracy": round(acc, 4),
        "train_seconds": round(seconds, 1),
        "mean": [MEAN],
        "std": [STD],
        "recipe": f"Adam {LR}, batch {BATCH}, {EPOCHS} epochs, seed {SEED}, 4,000 bundled digits",
    }


def main() -> None:
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {key: train(key) for key in ARCHITECTURES}
    (OUT / "builtin.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
