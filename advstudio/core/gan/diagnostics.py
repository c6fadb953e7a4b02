"""Reading a GAN's live signals for the three classic difficulties (Goodfellow 2016, NIPS
tutorial; Salimans et al. 2016): less diverse outputs (mode collapse), a discriminator that
guesses at equilibrium or wins outright, and unstable, oscillating training.

What "D guesses" and "D wins" mean depends on the loss, so each reads its own signal (see
:data:`SIGNALS`): the BCE losses the probabilities sigmoid(D); least squares D's raw outputs,
which it regresses to 1 (real) and 0 (fake); hinge the raw outputs against the margin +-1; a
WGAN critic's output is no probability and has no fixed scale, so it is read through the
Wasserstein estimate W = mean D(x) - mean D(G(z)) against W's best level in the run, and a
strong critic is no warning (its gradients do not vanish: that is WGAN's point).

Pure Python over the metric stream of :func:`advstudio.core.gan.train.train_gan`; the GAN tab
shows :meth:`GanDiagnostics.findings` as badges.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

WINDOW = 100  # steps the step-level rules look back over
WARMUP = 200  # steps before any step-level rule may fire (but the sustained "D wins" below)
# "D wins" also fires, from step SUSTAIN on, when D has won over the last SUSTAIN steps: a 300-step
# CPU run showed D(x) near 0.95 and D(G(z)) near 0.05 for 40 steps without a badge (issue #19)
SUSTAIN = 30


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
    "gradients become weak (the minimax loss's vanishes; the non-saturating, least-"
    "squares and hinge losses help but cannot fix a far-too-strong D).",
}


# loss -> (metric read for real images, for fakes, what the badge calls them)
SIGNALS = {
    "minimax": ("d_x", "d_g_z1", "D(x) = {r:.2f}, D(G(z)) = {f:.3f}"),
    "non-saturating": ("d_x", "d_g_z1", "D(x) = {r:.2f}, D(G(z)) = {f:.3f}"),
    "least-squares": (
        "out_real",
        "out_fake",
        "mean D(x) = {r:.2f}, mean D(G(z)) = {f:.3f} (targets 1 and 0)",
    ),
    "hinge": (
        "out_real",
        "out_fake",
        "mean D(x) = {r:.2f}, mean D(G(z)) = {f:.2f} (margins +1 and -1)",
    ),
    "wgan-gp": ("out_real", "out_fake", "Wasserstein estimate W = {w:.3f} (its best {best:.2f})"),
}
W_GUESSING = 0.05  # WGAN: W below this share of its best level = the critic sees no difference
# loss -> (real at least, fake at most): the means over the last SUSTAIN steps that read as "D has
# won" (BCE: probabilities; least squares: raw outputs aimed at 1 and 0; hinge: both margins met);
# a WGAN critic has none (a strong critic is WGAN's point)
SUSTAINED_WIN = {
    "minimax": (0.9, 0.15),
    "non-saturating": (0.9, 0.15),
    "least-squares": (0.9, 0.15),
    "hinge": (1.0, -1.0),
}


class GanDiagnostics:
    """Badges from the step metrics of a run trained with ``loss`` (one of :data:`SIGNALS`)."""

    def __init__(self, loss: str = "non-saturating") -> None:
        self.loss = loss
        self.real_key, self.fake_key, self.wording = SIGNALS[loss]
        self.d_g_z = deque(maxlen=WINDOW)
        self.d_x = deque(maxlen=WINDOW)
        self.recent = deque(maxlen=SUSTAIN)  # (real, fake) of the last SUSTAIN steps
        self.best_w = 0.0
        self.loss_g = deque(maxlen=WINDOW)
        self.diversity = deque(maxlen=WINDOW)
        self.best_diversity = 0.0
        self.best_classes = 0.0
        self.classes = None
        self.step = 0

    def update(self, step: int, values: dict[str, float]) -> None:
        self.step = step
        if "loss_g" in values:
            self.d_g_z.append(values[self.fake_key])
            self.d_x.append(values[self.real_key])
            self.recent.append((values[self.real_key], values[self.fake_key]))
            self.loss_g.append(values["loss_g"])
            self.diversity.append(values["diversity"])
            if len(self.diversity) == WINDOW:
                self.best_diversity = max(self.best_diversity, statistics.fmean(self.diversity))
                self.best_w = max(
                    self.best_w, statistics.fmean(self.d_x) - statistics.fmean(self.d_g_z)
                )
        if "classes_covered" in values:
            self.classes = values["classes_covered"]
            self.best_classes = max(self.best_classes, self.classes)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        if (
            self.classes is not None
            and self.best_classes >= 5
            and self.classes <= self.best_classes - 3
        ):
            out.append(
                Finding(
                    "collapse",
                    "warning",
                    f"Mode collapse? Only {self.classes:.0f} of 10 digit classes are "
                    f"generated now (it was {self.best_classes:.0f}).",
                )
            )
        ready = self.step >= WARMUP and len(self.loss_g) == WINDOW
        if ready:
            div = statistics.fmean(self.diversity)
            if self.best_diversity > 0 and div < 0.5 * self.best_diversity:
                out.append(
                    Finding(
                        "collapse",
                        "warning",
                        f"Samples are becoming alike: pairwise distance {div:.2f}, "
                        f"half of its best ({self.best_diversity:.2f}).",
                    )
                )
            out += self._d_findings(statistics.fmean(self.d_x), statistics.fmean(self.d_g_z))
            spread = statistics.pstdev(self.loss_g)
            mean = statistics.fmean(self.loss_g)
            if spread > max(1.0, 0.5 * abs(mean)):
                out.append(
                    Finding(
                        "unstable",
                        "warning",
                        f"Unstable: the generator's loss swings (σ = {spread:.2f} "
                        f"over the last {WINDOW} steps).",
                    )
                )
        if not any(f.kind == "d-wins" for f in out) and (won := self._sustained_win()):
            out.append(won)
        return out

    def _sustained_win(self) -> Finding | None:
        """ "D wins" when the means of the last SUSTAIN steps pass this loss's
        :data:`SUSTAINED_WIN` thresholds (before WARMUP too: a short run must show it)."""
        if self.loss not in SUSTAINED_WIN or len(self.recent) < SUSTAIN:
            return None
        real = statistics.fmean(r for r, _ in self.recent)
        fake = statistics.fmean(f for _, f in self.recent)
        real_min, fake_max = SUSTAINED_WIN[self.loss]
        if real < real_min or fake > fake_max:
            return None
        said = self.wording.format(r=real, f=fake, w=real - fake, best=self.best_w)
        return Finding(
            "d-wins",
            "warning",
            f"The discriminator wins: {said} over the last {SUSTAIN} steps. "
            "The generator's gradient may vanish.",
        )

    def _d_findings(self, real: float, fake: float) -> list[Finding]:
        """ "D wins" / "D guesses" read on this loss's signal (window means of it)."""
        said = self.wording.format(r=real, f=fake, w=real - fake, best=self.best_w)
        if self.loss == "wgan-gp":
            w = real - fake
            if self.best_w > 0 and w < W_GUESSING * self.best_w:
                return [
                    Finding(
                        "equilibrium",
                        "info",
                        f"The critic sees almost no difference between real and fake: {said}.",
                    )
                ]
            return []
        if self.loss == "hinge":
            wins, guessing = real > 1 and fake < -1, abs(real - fake) < 0.2
        else:  # probabilities (BCE) or least squares' raw outputs, both aiming at 1 and 0
            wins = fake < 0.05 and real > 0.9
            guessing = abs(real - 0.5) < 0.1 and abs(fake - 0.5) < 0.1
        if wins:
            return [
                Finding(
                    "d-wins",
                    "warning",
                    f"The discriminator wins: {said}. The generator's gradient may vanish.",
                )
            ]
        if guessing:
            return [Finding("equilibrium", "info", f"D is guessing: {said}.")]
        return []
