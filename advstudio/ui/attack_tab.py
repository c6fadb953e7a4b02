"""Attack tab: attack the current image, see original / adversarial / perturbation side by side,
top-5 before and after, the measures, the smallest flipping epsilon, and an epsilon sweep.

Run alone: ``python -m advstudio.ui.attack_tab``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.model_controller import ModelController
from advstudio.ui.state import AppState
from advstudio.ui.sweep_panel import SweepPanel
from advstudio.ui.widgets.error_box import report_job_error
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.perturbation import perturbation_rgb
from advstudio.ui.widgets.topk_bars import TopKBars
from advstudio.workers import JobManager, JobWorker

ACCESS = [("white-box", "White-box: model gradients"),
          ("transfer", "Black-box: surrogate transfer"),
          ("query", "Black-box: scores only")]
ATTACKS = {"white-box": ["fgsm", "bim", "pgd", "mifgsm"], "transfer": ["fgsm", "bim", "pgd", "mifgsm"],
           "query": ["nes", "spsa", "simba"]}
SLIDER_STEPS = 1000  # slider units per eps 1.0
SURROGATES = {"digits-mlp": "Digits MLP (built-in)", "digits-cnn": "Digits CNN (built-in)"}


def _fgsm_at_job(model, outcome, eps):
    from advstudio.core.attacks.lab import fgsm_at
    from advstudio.core.jobs import Progress

    yield Progress(0, 1, "re-applying FGSM")
    return fgsm_at(model, outcome, eps)


def _load_surrogate_job(key: str, device: str):
    from advstudio.core.jobs import Progress
    from advstudio.core.models.registry import load_model

    yield Progress(0, 0, f"loading surrogate {key}")
    return load_model(key, device)


def _minimal_eps_job(model, x, label: int, targeted: bool, target: int):
    import torch

    from advstudio.core.attacks.metrics import minimal_epsilon
    from advstudio.core.jobs import Progress

    yield Progress(0, 1, "searching the smallest ε")
    goal = target if targeted else label
    return minimal_epsilon(model, x.to(model.device), torch.tensor([goal], device=model.device),
                           targeted=targeted)


class AttackTab(QWidget):
    attacked = Signal(object)  # AttackOutcome

    def __init__(self, state: AppState, jobs: JobManager, models: ModelController,
                 settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.models = state, jobs, models
        self.settings = settings or QSettings()
        self.outcome = None
        self.whitebox_allowed = True
        self._note = ""  # shown under the buttons with the next outcome
        self.surrogates: dict[str, object] = {}
        self._slider_job: JobWorker | None = None
        self._slider_pending: float | None = None
        self._rerun = QTimer(self, singleShot=True, interval=250)
        self._rerun.timeout.connect(self.run_attack)
        self._build()
        state.image_changed.connect(self._invalidate)
        state.model_changed.connect(self._on_model)
        if state.model is not None:
            self._on_model(state.model)

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.access = QComboBox()
        for key, text in ACCESS:
            self.access.addItem(text, key)
        self.attack = QComboBox()
        self.surrogate = QComboBox()
        for key, text in SURROGATES.items():
            self.surrogate.addItem(text, key)
        self.surrogate.setToolTip("The model whose gradients the attacker uses instead")
        self.eps_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=SLIDER_STEPS // 2)
        self.eps_spin = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.005)
        self.eps_spin.setToolTip("L∞ radius in pixel units: 0.1 = 25.5 grey levels of 255")
        self.steps = QSpinBox(minimum=1, maximum=1000, value=10)
        self.alpha = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=1.0, singleStep=0.001)
        self.alpha.setSpecialValueText("auto (ε/4 BIM, ε/10 PGD, MI-FGSM)")
        self.budget = QSpinBox(minimum=10, maximum=100_000, singleStep=500, value=2000)
        self.targeted = QCheckBox("Targeted")
        self.target = QComboBox()
        self.target.setEnabled(False)
        self.true_class = QComboBox()
        self.true_class.setToolTip("Untargeted attacks push away from this class")

        form = QFormLayout()
        form.addRow("Access", self.access)
        form.addRow("Attack", self.attack)
        form.addRow("Surrogate", self.surrogate)
        eps_row = QHBoxLayout()
        eps_row.addWidget(self.eps_slider, 1)
        eps_row.addWidget(self.eps_spin)
        form.addRow("ε (L∞)", eps_row)
        form.addRow("Steps", self.steps)
        form.addRow("Step size", self.alpha)
        form.addRow("Query budget", self.budget)
        form.addRow("True class", self.true_class)
        form.addRow(self.targeted, self.target)
        self.attack_button = QPushButton("Attack")
        self.attack_button.setToolTip("Run the attack on the current image (Ctrl+Return)")
        self.attack_button.setDefault(True)
        self.min_eps_button = QPushButton("Smallest ε")
        self.min_eps_button.setToolTip("Binary search for the smallest FGSM ε that flips the "
                                       "prediction (white-box)")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the adversarial image (lossless PNG), the "
                                      "perturbation (PNG, .npy) and a JSON summary (Ctrl+S)")
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.attack_button, self.min_eps_button, self.export_button):
            buttons.addWidget(b)
        self.message = QLabel(wordWrap=True)
        controls_box = QGroupBox("Attack")
        cb = QVBoxLayout(controls_box)
        cb.addLayout(form)
        cb.addLayout(buttons)
        cb.addWidget(self.message)
        cb.addStretch(1)
        controls_box.setFixedWidth(360)

        self.original = ImageView("Original", "Load an image on the Image tab")
        self.adversarial = ImageView("Adversarial", "Press Attack")
        self.perturbation = ImageView("Perturbation", "")
        views = QHBoxLayout()
        for v in (self.original, self.adversarial, self.perturbation):
            views.addWidget(v, 1)

        self.before = TopKBars(5)
        self.after = TopKBars(5)
        self.measures = QLabel(wordWrap=True)
        self.measures.setTextFormat(Qt.TextFormat.RichText)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Before</b>"))
        right.addWidget(self.before)
        right.addWidget(QLabel("<b>After</b>"))
        right.addWidget(self.after)
        right.addWidget(self.measures)
        right.addStretch(1)
        right_w = QWidget()
        right_w.setLayout(right)
        right_w.setFixedWidth(300)

        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(controls_box)
        top_layout.addLayout(views, 1)
        top_layout.addWidget(right_w)
        self.sweep = SweepPanel(self.state, self.jobs, self.settings)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.sweep)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.access.currentIndexChanged.connect(self._on_access)
        self.attack.currentIndexChanged.connect(self._update_enabled)
        self.targeted.toggled.connect(self._on_targeted)
        self.eps_slider.valueChanged.connect(
            lambda v: self.eps_spin.setValue(v / SLIDER_STEPS))
        self.eps_spin.valueChanged.connect(self._on_eps)
        self.attack_button.clicked.connect(self.run_attack)
        self.min_eps_button.clicked.connect(self.find_min_eps)
        self.export_button.clicked.connect(self.export_dialog)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.run_attack)
        QShortcut(QKeySequence.StandardKey.Save, self, activated=self.export_dialog)
        self.eps_spin.setValue(float(self.settings.value("attack/eps", 0.1)))
        self._on_access()

    # -- controls -----------------------------------------------------------------------------
    @property
    def eps(self) -> float:
        return round(self.eps_spin.value(), 6)

    def set_eps(self, eps: float) -> None:
        self.eps_spin.setValue(eps)

    def _on_access(self) -> None:
        from advstudio.core.attacks.lab import ATTACK_NAMES

        current = self.attack.currentData()
        self.attack.blockSignals(True)
        self.attack.clear()
        for key in ATTACKS[self.access.currentData()]:
            self.attack.addItem(ATTACK_NAMES.get(key, key) if key != "fgsm" else "FGSM", key)
        index = self.attack.findData(current)
        self.attack.setCurrentIndex(max(index, 0))
        self.attack.blockSignals(False)
        self._update_enabled()
        self._invalidate()

    def _update_enabled(self) -> None:
        access, attack = self.access.currentData(), self.attack.currentData()
        self.surrogate.setEnabled(access == "transfer")
        iterative = attack in ("bim", "pgd", "mifgsm")
        self.steps.setEnabled(iterative)
        self.alpha.setEnabled(iterative)
        self.budget.setEnabled(access == "query")
        self.min_eps_button.setEnabled(access == "white-box")

    def _on_targeted(self, on: bool) -> None:
        self.target.setEnabled(on)
        self._invalidate()

    def _on_model(self, model) -> None:
        if model is None:
            return
        for combo in (self.target, self.true_class):
            combo.clear()
        self.true_class.addItem("(the model's prediction)", -1)
        for i, name in enumerate(model.class_names):
            self.target.addItem(f"{i}: {name}" if not name.isdigit() else name, i)
            self.true_class.addItem(f"{i}: {name}" if not name.isdigit() else name, i)
        self.sweep.setEnabled(model.input_shape[0] == 1 and model.num_classes == 10)
        self._invalidate()
        self._probe_gradients(model)

    def _probe_gradients(self, model) -> None:
        """Offer white-box attacks only if the model gives input gradients (checked on a job)."""
        def job():
            from advstudio.core.attacks.lab import has_input_gradients
            from advstudio.core.jobs import Progress

            yield Progress(0, 1, "checking gradients")
            return has_input_gradients(model)

        def done(ok: bool) -> None:
            if model is not self.state.model:
                return
            self.whitebox_allowed = ok
            item = self.access.model().item(self.access.findData("white-box"))
            item.setEnabled(ok)
            if not ok:
                if self.access.currentData() == "white-box":
                    self.access.setCurrentIndex(self.access.findData("transfer"))
                self.message.setText(f"{model.name} gives no gradients to its input: only "
                                     "black-box attacks (transfer, scores only) can run on it.")
            elif self.message.text().endswith("can run on it."):
                self.message.setText("")

        self.jobs.start(job, "Checking gradients", show_in_status=False,
                        connect=lambda w: w.returned.connect(done))

    def _invalidate(self, *_args) -> None:
        """The image, model or settings changed: the cached FGSM sign no longer applies."""
        self.outcome = None
        self.export_button.setEnabled(False)
        image = self.state.image
        if image is not None:
            self.original.set_pixels(image.pixels, "Original")
        self.adversarial.set_pixels(None, "Adversarial")
        self.perturbation.set_pixels(None, "Perturbation")
        self.after.clear()
        self.measures.setText("")

    def _on_eps(self, eps: float) -> None:
        self.eps_slider.blockSignals(True)
        self.eps_slider.setValue(round(eps * SLIDER_STEPS))
        self.eps_slider.blockSignals(False)
        self.settings.setValue("attack/eps", eps)
        if self.outcome is not None and self.outcome.direction is not None:
            self._slider_update(self.eps)
        elif self.outcome is not None and self.access.currentData() == "white-box":
            self._rerun.start()  # iterative white-box: rerun when the slider rests

    # -- running ------------------------------------------------------------------------------
    def job_config(self):
        """(kind, config) of the tab's headless job, the ε sweep (File ▸ Export job as config)."""
        return "sweep", self.sweep.config()

    def spec(self):
        from advstudio.core.attacks.lab import AttackSpec

        return AttackSpec(attack=self.attack.currentData(), access=self.access.currentData(),
                          eps=self.eps, steps=self.steps.value(), alpha=self.alpha.value(),
                          targeted=self.targeted.isChecked(),
                          target=self.target.currentData() if self.targeted.isChecked() else -1,
                          label=-1 if self.true_class.currentData() is None
                          else self.true_class.currentData(),
                          max_queries=self.budget.value())

    def run_attack(self) -> JobWorker | None:
        model, image = self.state.model, self.state.image
        if model is None or image is None:
            self.message.setText("Load an image and a model on the Image tab first.")
            return None
        try:
            spec = self.spec()
        except ConfigError as exc:
            self.message.setText(str(exc))
            return None
        if spec.access.value == "transfer" and self.surrogate.currentData() not in self.surrogates:
            self._load_surrogate_then_attack()
            return None
        from advstudio.core.attacks.lab import attack_image
        from advstudio.core.images import to_tensor

        x = to_tensor(image)
        surrogate = self.surrogates.get(self.surrogate.currentData())

        def connect(w: JobWorker) -> None:
            w.returned.connect(self._show_outcome)
            w.errored.connect(self._on_error)

        self.message.setText("attacking…")
        return self.jobs.start(lambda: attack_image(model, x, spec, surrogate),
                               f"{spec.attack.upper()} attack", connect=connect)

    def _load_surrogate_then_attack(self) -> None:
        key = self.surrogate.currentData()

        def loaded(model) -> None:
            self.surrogates[key] = model
            self.run_attack()

        self.message.setText(f"loading the surrogate {key}…")
        self.jobs.start(lambda: _load_surrogate_job(key, self.state.device), "Loading surrogate",
                        connect=lambda w: (w.returned.connect(loaded),
                                           w.errored.connect(self._on_error)))

    def _on_error(self, exc: BaseException) -> None:
        report_job_error(self, self.message, "The attack failed", exc)

    def _slider_update(self, eps: float) -> None:
        """Coalesce slider moves: one re-application in flight, the latest eps queued."""
        if self._slider_job is not None and not self._slider_job.is_done:
            self._slider_pending = eps
            return
        model, outcome = self.state.model, self.outcome

        def finished() -> None:
            pending, self._slider_pending = self._slider_pending, None
            if pending is not None and self.outcome is not None:
                self._slider_update(pending)

        self._slider_job = self.jobs.start(
            lambda: _fgsm_at_job(model, outcome, eps), "FGSM ε", show_in_status=False,
            connect=lambda w: (w.returned.connect(self._show_outcome),
                               w.errored.connect(self._on_error), w.finished.connect(finished)))

    def _show_outcome(self, outcome) -> None:
        from advstudio.core.images import from_tensor

        if self.state.model is None:
            return
        self.outcome = outcome
        names = self.state.model.class_names
        r = outcome.report
        self.adversarial.set_pixels(from_tensor(outcome.x_adv),
                                    f"Adversarial: {names[r.pred_after]} "
                                    f"({r.conf_after * 100:.1f} %)")
        rgb, amp = perturbation_rgb(from_tensor(outcome.perturbation))
        self.perturbation.set_pixels(rgb, f"Perturbation ×{amp:.1f} (red brighter, blue darker)")
        self.original.set_pixels(from_tensor(outcome.x), f"Original: {names[r.pred_before]} "
                                 f"({r.conf_before * 100:.1f} %)")
        self.before.set_prediction(outcome.before.names, outcome.before.probs)
        self.after.set_prediction(outcome.after.names, outcome.after.probs)
        verdict = ("<span style='color:#b2182b'><b>fooled</b></span>" if r.success
                   else "<span style='color:#2166ac'><b>not fooled</b></span>")
        rows = [f"{verdict}: {names[r.pred_before]} → {names[r.pred_after]}",
                f"L∞ {r.linf:.4f} · L2 {r.l2:.3f} · L0 {r.l0:,} values",
                f"PSNR {r.psnr:.1f} dB · SSIM {r.ssim:.3f}"]
        if outcome.queries is not None:
            rows.append(f"queries to the target: {outcome.queries:,}")
        if outcome.surrogate_success is not None:
            rows.append(f"surrogate fooled: {'yes' if outcome.surrogate_success else 'no'}")
        self.measures.setText("<br>".join(rows))
        self.message.setText(self._note)
        self._note = ""
        self.export_button.setEnabled(True)
        self.attacked.emit(outcome)

    def find_min_eps(self) -> JobWorker | None:
        model, image = self.state.model, self.state.image
        if model is None or image is None:
            return None
        from advstudio.core.images import to_tensor

        try:
            spec = self.spec()
        except ConfigError as exc:
            self.message.setText(str(exc))
            return None
        x = to_tensor(image)
        label = spec.label if spec.label >= 0 else model.predict(x.to(model.device), 1)[0].indices[0]

        def found(eps) -> None:
            if eps is None:
                self.message.setText("Even ε = 1 does not flip this image with FGSM.")
                return
            self._note = (f"Smallest FGSM ε that flips the prediction: {eps:.4f} "
                          f"({eps * 255:.1f} grey levels)")
            self.message.setText(self._note)
            self.access.setCurrentIndex(self.access.findData("white-box"))
            self.attack.setCurrentIndex(self.attack.findData("fgsm"))
            self.set_eps(eps)
            self.run_attack()

        return self.jobs.start(
            lambda: _minimal_eps_job(model, x, label, spec.targeted, spec.target), "Smallest ε",
            connect=lambda w: (w.returned.connect(found), w.errored.connect(self._on_error)))

    # -- export -------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.outcome is None:
            return
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(self, "Export adversarial image",
                                              str(start / "adversarial.png"), "PNG (*.png)")
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, png: Path) -> list[Path]:
        """``png``: the adversarial image (8-bit, lossless); beside it ``*_perturbation.npy``
        (float32 x_adv - x), ``*_perturbation.png`` (the colour map) and ``*_summary.json``."""
        from dataclasses import asdict

        from advstudio.core.images import from_tensor, save_png

        outcome = self.outcome
        save_png(from_tensor(outcome.x_adv), png)
        delta = from_tensor(outcome.perturbation)
        np.save(png.with_name(png.stem + "_perturbation.npy"), delta)
        rgb, amp = perturbation_rgb(delta)
        save_png(rgb.astype(np.float32) / 255, png.with_name(png.stem + "_perturbation.png"))
        names = self.state.model.class_names
        summary = {"model": self.state.model_key, "image": str(getattr(self.state.image, "path", "")),
                   "spec": {**asdict(outcome.spec), "access": outcome.spec.access.value},
                   "report": asdict(outcome.report),
                   "class_before": names[outcome.report.pred_before],
                   "class_after": names[outcome.report.pred_after],
                   "queries": outcome.queries, "perturbation_amplification": amp}
        out = png.with_name(png.stem + "_summary.json")
        out.write_text(json.dumps(summary, indent=2))
        self.message.setText(f"Exported {png.name} and its perturbation and summary.")
        return [png, png.with_name(png.stem + "_perturbation.npy"),
                png.with_name(png.stem + "_perturbation.png"), out]


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(AttackTab)
