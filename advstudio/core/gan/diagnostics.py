"""Reading a GAN's live signals for the three classic difficulties (Goodfellow 2016, NIPS
tutorial; Salimans et al. 2016): less diverse outputs (mode collapse), a discriminator that
guesses at equilibrium or wins outright, and unstable, oscillating training.

Pure Python over the metric stream of :func:`advstudio.core.gan.train.train_gan`; the GAN tab
shows :meth:`GanDiagnostics.findings` as badges.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

WINDOW = 100  # steps the step-level rules look back over
WARMUP = 200  # steps before any step-level rule may fire


@dataclass(frozen=True)
class Finding:
    kind: str  # "collapse" | "d-wins" | "equilibrium" | "unstable"
    severity: str  # "warning" | "info"
    message: str


EXPLANATIONS = {
    "collapse": "Mode collapse: the generator finds a few outputs that fool the discriminator "
                "and keeps producing them, so samples become less diverse (fewer digit classes, "
                "samples alike).",
    "equilibrium": "At the theoretical equilibrium the discriminator cannot tell real from fake "
                   "and outputs 0.5 for both: its guesses carry no signal, so judge the samples, "
                   "not the losses.",
    "unstable": "Two players optimise against each other, so the losses need not go down: they "
                "can oscillate or swing, and training may diverge instead of converging.",
    "d-wins": "When the discriminator rejects every fake with confidence, the generator's "
              "gradients become weak (the saturating loss vanishes; the non-saturating one "
              "used here helps but cannot fix a far-too-strong D).",
}


class GanDiagnostics:
    def __init__(self) -> None:
        self.d_g_z = deque(maxlen=WINDOW)
        self.d_x = deque(maxlen=WINDOW)
        self.loss_g = deque(maxlen=WINDOW)
        self.diversity = deque(maxlen=WINDOW)
        self.best_diversity = 0.0
        self.best_classes = 0.0
        self.classes = None
        self.step = 0

    def update(self, step: int, values: dict[str, float]) -> None:
        self.step = step
        if "loss_g" in values:
            self.d_g_z.append(values["d_g_z1"])
            self.d_x.append(values["d_x"])
            self.loss_g.append(values["loss_g"])
            self.diversity.append(values["diversity"])
            if len(self.diversity) == WINDOW:
                self.best_diversity = max(self.best_diversity, statistics.fmean(self.diversity))
        if "classes_covered" in values:
            self.classes = values["classes_covered"]
            self.best_classes = max(self.best_classes, self.classes)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        if self.classes is not None and self.best_classes >= 5 and \
                self.classes <= self.best_classes - 3:
            out.append(Finding("collapse", "warning",
                               f"Mode collapse? Only {self.classes:.0f} of 10 digit classes are "
                               f"generated now (it was {self.best_classes:.0f})."))
        ready = self.step >= WARMUP and len(self.loss_g) == WINDOW
        if ready:
            div = statistics.fmean(self.diversity)
            if self.best_diversity > 0 and div < 0.5 * self.best_diversity:
                out.append(Finding("collapse", "warning",
                                   f"Samples are becoming alike: pairwise distance {div:.2f}, "
                                   f"half of its best ({self.best_diversity:.2f})."))
            d_fake, d_real = statistics.fmean(self.d_g_z), statistics.fmean(self.d_x)
            if d_fake < 0.05 and d_real > 0.9:
                out.append(Finding("d-wins", "warning",
                                   f"The discriminator wins: D(x) = {d_real:.2f}, D(G(z)) = "
                                   f"{d_fake:.3f}. The generator's gradient may vanish."))
            elif abs(d_real - 0.5) < 0.1 and abs(d_fake - 0.5) < 0.1:
                out.append(Finding("equilibrium", "info",
                                   f"D is guessing: D(x) = {d_real:.2f}, D(G(z)) = {d_fake:.2f}."))
            spread = statistics.pstdev(self.loss_g)
            mean = statistics.fmean(self.loss_g)
            if spread > max(1.0, 0.5 * abs(mean)):
                out.append(Finding("unstable", "warning",
                                   f"Unstable: the generator's loss swings (σ = {spread:.2f} "
                                   f"over the last {WINDOW} steps)."))
        return out
