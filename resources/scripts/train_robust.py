"""Train the built-in adversarially trained digit CNN (``digits-cnn-pgd``) with the workbench's own
Defence job, and add it to ``resources/models/builtin.json``.

    uv run python resources/scripts/train_robust.py

PGD adversarial training (Madry et al.) at ε = 0.1 (7 steps of ε/4, random start) on the 4,000
bundled training digits, Adam 1e-3, batch 64, seed 0, 2 CPU threads. Writes
``resources/models/digits-cnn-pgd.pt`` (a plain ``state_dict``, loadable with
``weights_only=True``). It gives the Attack and Defence labs a robust model to compare with the
standard one out of the box.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from advstudio.core.defence.config import TrainConfig
from advstudio.core.defence.train import train_classifier
from advstudio.core.evaluate import EvaluateConfig, evaluate
from advstudio.core.jobs import Log, Metrics, drive

OUT = Path(__file__).resolve().parents[1] / "models"
KEY = "digits-cnn-pgd"
EPS, EPOCHS = 0.1, int(sys.argv[1]) if len(sys.argv) > 1 else 10


def main() -> None:
    torch.set_num_threads(2)
    config = TrainConfig(
        arch="digits-cnn",
        recipe="pgd",
        eps=EPS,
        pgd_steps=7,
        epochs=EPOCHS,
        batch_size=64,
        lr=1e-3,
        seed=0,
        device="cpu",
        eval_images=500,
        save_path=str(OUT / f"{KEY}.pt"),
    )

    def show(event) -> None:
        if isinstance(event, Metrics) and "clean_acc" in event.values:
            print(
                f"epoch {event.step}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in event.values.items()),
                flush=True,
            )
        elif isinstance(event, Log):
            print(event.text, flush=True)

    t0 = time.perf_counter()
    result = drive(train_classifier(config), on_event=show).result
    seconds = time.perf_counter() - t0
    meta_path = OUT / "builtin.json"
    meta = json.loads(meta_path.read_text())
    # clean accuracy on all 1,000 test digits, as the other built-ins report it
    meta[KEY] = {
        "test_accuracy": None,
        "train_seconds": round(seconds, 1),
        "mean": [0.1307],
        "std": [0.3081],
        "recipe": f"PGD adversarial training (Madry et al.), eps {EPS}, 7 steps of "
        f"eps/4 with random start, Adam 0.001, batch 64, {EPOCHS} epochs, "
        "seed 0, 4,000 bundled digits",
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    from advstudio.core.models import registry

    registry.builtin_meta.cache_clear()
    accuracy = drive(evaluate(EvaluateConfig(model=KEY, device="cpu"))).result.accuracy
    meta[KEY]["test_accuracy"] = round(accuracy, 4)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"{KEY}: {accuracy:.4f} clean on 1,000 test digits; {seconds:.0f} s; "
        f"final metrics {result.metrics}"
    )


if __name__ == "__main__":
    main()
