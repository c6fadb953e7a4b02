"""Attack tab: attack the current image, see original / adversarial / perturbation side by side,
top-5 before and after, the measures, whether the result survives saving (PNG, JPEG), the
smallest flipping epsilon, and below, in tabs: the epsilon sweep, the distance to the decision
boundary, input-transform defences with the adaptive attack, and robust accuracy.

Run alone: ``python -m advstudio.ui.attack.tab``.
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
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.attack.boundary_panel import BoundaryPanel
from advstudio.ui.attack.explain_panel import ExplainPanel
from advstudio.ui.attack.patch_panel import PatchPanel
from advstudio.ui.attack.robust_panel import RobustPanel
from advstudio.ui.attack.sweep_panel import SweepPanel
from advstudio.ui.attack.transform_panel import TransformPanel
from advstudio.ui.attack.universal_panel import UniversalPanel
from advstudio.ui.help import tip, tip_items
from advstudio.ui.model_controller import ModelController
from advstudio.ui.state import AppState
from advstudio.ui.widgets.context_header import ContextHeader
from advstudio.ui.widgets.error_box import report_job_error
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.perturbation import perturbation_rgb
from advstudio.ui.widgets.topk_bars import TopKBars
from advstudio.workers import JobManager, JobWorker

ACCESS = [
    ("white-box", "White-box: model gradients"),
    ("transfer", "Black-box: surrogate transfer"),
    ("query", "Black-box: scores only"),
    ("labels", "Black-box: labels only"),
]
DEFAULT_STEPS = 10  # for the attacks without a steps setting
SLIDER_STEPS = 1000  # slider units per eps 1.0
SURROGATES = {"digits-mlp": "Digits MLP (built-in)", "digits-cnn": "Digits CNN (built-in)"}


def _entry(name: str | None):
    """The catalogue entry of ``name``, None when no attack is chosen (an empty list)."""
    from advstudio.core.attacks.catalogue import get

    return get(name) if name is not None else None


def _fgsm_at_job(model, outcome, eps):
    from advstudio.core.attacks.lab import fgsm_at
    from advstudio.core.jobs import Progress

    yield Progress(0, 1, "re-applying FGSM")
    return fgsm_at(model, outcome, eps, check_saving=False)  # one forward; saving checked next


def _load_surrogate_job(key: str, device: str):
    from advstudio.core.jobs import Progress
    from advstudio.core.models.registry import load_model

    yield Progress(0, 0, f"loading surrogate {key}")
    return load_model(key, device)


def _survival_job(model, outcome, jpeg_quality: int):
    from advstudio.core.attacks.lab import check_survival
    from advstudio.core.jobs import Progress

    yield Progress(0, 1, "re-checking after saving")
    return check_survival(model, outcome, jpeg_quality)


def survival_text(survival, names: list[str]) -> str:
    """ "still adversarial after PNG ✓ / after JPEG q=75 ✗ (reads 7)" for a SurvivalReport."""
    if not bool(survival.adv_float[0]):
        return "not adversarial before saving either"

    def part(fmt: str, adv, pred) -> str:
        if bool(adv[0]):
            return f"after {fmt} ✓"
        return f"after {fmt} ✗ (reads {names[int(pred[0])]})"

    parts = [part("PNG", survival.adv_png, survival.pred_png)]
    if survival.adv_jpeg is not None:
        parts.append(part(f"JPEG q={survival.jpeg_quality}", survival.adv_jpeg, survival.pred_jpeg))
    return "still adversarial " + " / ".join(parts)


def quantise_note(method: str) -> str:
    """How quantise_adversarial put the result on the grid, in words."""
    if method.startswith("gradient step"):
        return f"repaired by {method.split()[-1]} one-level gradient step(s)"
    return {
        "nearest": "rounded to the nearest grey level",
        "toward perturbation": "rounded away from the original",
        "failed": "rounding undid it and no repair worked",
        "not adversarial": "not adversarial before rounding either",
    }.get(method, method)


def _minimal_eps_job(model, x, label: int, targeted: bool, target: int):
    import torch

    from advstudio.core.attacks.metrics import minimal_epsilon
    from advstudio.core.jobs import Progress

    yield Progress(0, 1, "searching the smallest ε")
    goal = target if targeted else label
    return minimal_epsilon(
        model, x.to(model.device), torch.tensor([goal], device=model.device), targeted=targeted
    )


class AttackTab(QWidget):
    attacked = Signal(object)  # AttackOutcome
    survival_checked = Signal(object)  # AttackOutcome re-checked at a new JPEG quality

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models: ModelController,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.models = state, jobs, models
        self.settings = settings or QSettings()
        self.outcome = None
        self.whitebox_allowed = True
        self._note = ""  # shown under the buttons with the next outcome
        self.surrogates: dict[str, object] = {}
        self.export_warning: QMessageBox | None = None
        self._rerun = QTimer(self, singleShot=True, interval=250)
        self._rerun.timeout.connect(self.run_attack)
        self._build()
        self._slider_owner = JobOwner(self, jobs, self.message)  # FGSM re-applied at a new ε
        self._survival_owner = JobOwner(self, jobs, self.message)
        state.image_changed.connect(self._invalidate)
        state.image_changed.connect(self._clear_panels)
        state.model_changed.connect(self._on_model)
        if state.model is not None:
            self._on_model(state.model)

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.access = QComboBox()
        for key, text in ACCESS:
            self.access.addItem(text, key)
        tip(tip_items(self.access), "white-box", "transfer", "query", "labels")
        self.attack = QComboBox()
        self.surrogate = QComboBox()
        for key, text in SURROGATES.items():
            self.surrogate.addItem(text, key)
        self.surrogate.setToolTip("The model whose gradients the attacker uses instead")
        tip(self.surrogate, "transfer")
        self.eps_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=SLIDER_STEPS // 2)
        self.eps_spin = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.005)
        self.eps_spin.setToolTip("L∞ radius in pixel units: 0.1 = 25.5 grey levels of 255")
        self.steps = QSpinBox(minimum=1, maximum=1000, value=10)
        self.alpha = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=1.0, singleStep=0.001)
        self.alpha.setSpecialValueText("auto (ε/4 BIM, ε/10 PGD, MI-FGSM)")
        self.budget = QSpinBox(minimum=10, maximum=100_000, singleStep=500, value=2000)
        self.apgd_loss = QComboBox()
        self.apgd_loss.addItem("CE (cross-entropy)", "ce")
        self.apgd_loss.addItem("DLR (logit ratio)", "dlr")
        self.apgd_loss.setToolTip(
            "APGD's objective: cross-entropy, or the scale-invariant "
            "Difference of Logits Ratio (AutoAttack's; ≥ 3 classes)"
        )
        tip(self.apgd_loss, "apgd", "dlr")
        self.apgd_loss.setCurrentIndex(
            max(self.apgd_loss.findData(str(self.settings.value("attack/apgd_loss", "ce"))), 0)
        )
        self.cw_c = QDoubleSpinBox(
            decimals=3,
            minimum=0.001,
            maximum=10_000.0,
            singleStep=0.5,
            value=float(self.settings.value("attack/cw_c", 1.0)),
        )
        self.cw_c.setToolTip(
            "C&W: first weight c of the classification loss (> 0); the search "
            "then adapts it per image"
        )
        self.cw_kappa = QDoubleSpinBox(
            decimals=2,
            minimum=0.0,
            maximum=1000.0,
            singleStep=0.5,
            value=float(self.settings.value("attack/cw_kappa", 0.0)),
        )
        tip(self.cw_c, "cw")
        self.cw_kappa.setToolTip(
            "C&W: confidence margin κ ≥ 0 in logit units (0 = just across the boundary)"
        )
        self.quantise = QCheckBox("Quantisation-aware (1/255 grid)")
        self.quantise.setToolTip(
            "Round the result onto the 8-bit grid inside the ε-ball and "
            "repair it where rounding undid it, so the exported PNG is "
            "what was measured"
        )
        self.quantise.setChecked(self.settings.value("attack/quantise", "false") in (True, "true"))
        self.targeted = QCheckBox("Targeted")
        self.target = QComboBox()
        self.target.setEnabled(False)
        self.true_class = QComboBox()
        self.true_class.setToolTip("Untargeted attacks push away from this class")

        form = QFormLayout()
        form.addRow("Access", self.access)
        form.addRow("Attack", self.attack)
        form.addRow("APGD loss", self.apgd_loss)
        cw_row = QHBoxLayout()
        cw_row.addWidget(self.cw_c, 1)
        cw_row.addWidget(QLabel("κ"))
        cw_row.addWidget(self.cw_kappa, 1)
        self.cw_row = cw_row
        form.addRow("C&W c", cw_row)
        form.addRow("Surrogate", self.surrogate)
        eps_row = QHBoxLayout()
        eps_row.addWidget(self.eps_slider, 1)
        eps_row.addWidget(self.eps_spin)
        self.eps_label = QLabel("ε (L∞)")
        tip(self.eps_label, "eps-linf", "eps-l2")
        form.addRow(self.eps_label, eps_row)
        form.addRow("Steps", self.steps)
        form.addRow("Step size", self.alpha)
        form.addRow("Query budget", self.budget)
        form.addRow("True class", self.true_class)
        form.addRow(self.targeted, self.target)
        form.addRow("", self.quantise)
        self.form = form
        self.attack_button = QPushButton("Attack")
        self.attack_button.setToolTip("Run the attack on the current image (Ctrl+Return)")
        self.attack_button.setDefault(True)
        self.min_eps_button = QPushButton("Smallest ε")
        self.min_eps_button.setToolTip(
            "Binary search for the smallest FGSM ε that flips the prediction (white-box)"
        )
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Save the adversarial image (lossless PNG), the "
            "perturbation (PNG, .npy) and a JSON summary (Ctrl+S); "
            "warns if the saved PNG no longer fools the model"
        )
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
        controls_scroll = QScrollArea()
        controls_scroll.setWidget(controls_box)
        controls_scroll.setWidgetResizable(True)
        controls_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls_scroll.setFixedWidth(360)

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
        self.jpeg_check = QCheckBox("also as JPEG, q")
        self.jpeg_check.setToolTip(
            "Re-check the adversarial image after saving it as a JPEG of "
            "this quality, as well as after the 8-bit PNG export"
        )
        self.jpeg_check.setChecked(
            self.settings.value("attack/jpeg_check", "true") in (True, "true")
        )
        self.jpeg_q = QSpinBox(
            minimum=1, maximum=100, value=int(self.settings.value("attack/jpeg_quality", 75))
        )
        self.jpeg_q.setToolTip("JPEG quality, 1 (worst) to 100 (best)")
        self.survival = QLabel(wordWrap=True)
        self.survival.setToolTip(
            "Is the adversarial image still adversarial once rounded to "
            "8 bits (what the PNG export stores) and, if ticked, once "
            "saved as a JPEG? ✓ yes, ✗ no (and what the model reads)"
        )
        jpeg_row = QHBoxLayout()
        jpeg_row.addWidget(QLabel("Saving:"))
        jpeg_row.addWidget(self.jpeg_check)
        jpeg_row.addWidget(self.jpeg_q)
        jpeg_row.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Before</b>"))
        right.addWidget(self.before)
        right.addWidget(QLabel("<b>After</b>"))
        right.addWidget(self.after)
        right.addWidget(self.measures)
        right.addLayout(jpeg_row)
        right.addWidget(self.survival)
        right.addStretch(1)
        right_w = QWidget()
        right_w.setLayout(right)
        right_w.setFixedWidth(300)

        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(controls_scroll)
        top_layout.addLayout(views, 1)
        top_layout.addWidget(right_w)
        self.sweep = SweepPanel(self.state, self.jobs, self.settings)
        self.boundary = BoundaryPanel(self, self.jobs, self.settings)
        self.defences = TransformPanel(self, self.jobs, self.settings)
        self.robust = RobustPanel(self, self.jobs, self.settings)
        self.panels = QTabWidget()
        self.universal = UniversalPanel(self, self.jobs, self.settings)  # attack lab III
        self.patch = PatchPanel(self, self.jobs, self.settings)
        self.explain = ExplainPanel(self, self.jobs, self.settings)
        for panel, title in (
            (self.sweep, "ε sweep"),
            (self.boundary, "Distance to boundary"),
            (self.defences, "Input defences"),
            (self.robust, "Robust accuracy"),
            (self.universal, "Universal"),
            (self.patch, "Patch"),
            (self.explain, "Explain"),
        ):
            # each panel scrolls rather than setting the window's minimum height (1280×720)
            area = QScrollArea()
            area.setWidget(panel)
            area.setWidgetResizable(True)
            area.setFrameShape(QScrollArea.Shape.NoFrame)
            self.panels.addTab(area, title)
        self.panels.setCurrentIndex(int(self.settings.value("attack/panel", 0)))
        self.panels.currentChanged.connect(lambda i: self.settings.setValue("attack/panel", i))
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.panels)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        self.header = ContextHeader(self.state)
        layout.addWidget(self.header)
        layout.addWidget(splitter)

        self.access.currentIndexChanged.connect(self._on_access)
        self.attack.currentIndexChanged.connect(self._on_attack)
        self.targeted.toggled.connect(self._on_targeted)
        self.eps_slider.valueChanged.connect(lambda v: self.eps_spin.setValue(v / SLIDER_STEPS))
        self.eps_spin.valueChanged.connect(self._on_eps)
        self.jpeg_check.toggled.connect(self._on_jpeg)
        self.jpeg_q.valueChanged.connect(self._on_jpeg)
        self.jpeg_q.setEnabled(self.jpeg_check.isChecked())
        self.steps.valueChanged.connect(self._on_steps)
        self.quantise.toggled.connect(self._on_quantise)
        self.apgd_loss.currentIndexChanged.connect(
            lambda: self.settings.setValue("attack/apgd_loss", self.apgd_loss.currentData())
        )
        self.cw_c.valueChanged.connect(lambda v: self.settings.setValue("attack/cw_c", v))
        self.cw_kappa.valueChanged.connect(lambda v: self.settings.setValue("attack/cw_kappa", v))
        self.attack_button.clicked.connect(self.run_attack)
        self.min_eps_button.clicked.connect(self.find_min_eps)
        self.export_button.clicked.connect(self.export_dialog)
        QShortcut(
            QKeySequence("Ctrl+Return"),
            self,
            activated=self.run_attack,
            whatsThis="Attack tab: run the attack",
        )
        QShortcut(
            QKeySequence.StandardKey.Save,
            self,
            activated=self.export_dialog,
            whatsThis="Attack tab: export the adversarial image",
        )
        self.eps_spin.setValue(float(self.settings.value("attack/eps", 0.1)))
        self._steps_attack: str | None = None
        self._on_access()

    # -- controls -----------------------------------------------------------------------------
    @property
    def eps(self) -> float:
        return round(self.eps_spin.value(), 6)

    def set_eps(self, eps: float) -> None:
        self.eps_spin.setValue(eps)

    def _on_access(self) -> None:
        """Fill the attack list from the catalogue: the lab's attacks for this access."""
        from advstudio.core.attacks.catalogue import attacks_for

        current = self.attack.currentData()
        self.attack.blockSignals(True)
        self.attack.clear()
        for entry in attacks_for(access=self.access.currentData(), context="lab"):
            self.attack.addItem(entry.title, entry.name)
        tip_items(self.attack)
        index = self.attack.findData(current)
        self.attack.setCurrentIndex(max(index, 0))
        self.attack.blockSignals(False)
        self._on_attack()
        self._invalidate()

    def _on_attack(self) -> None:
        """Each attack keeps its own number of steps (C&W and APGD need ~100, BIM ~10)."""
        attack = self.attack.currentData()
        if attack is not None and attack != self._steps_attack:
            self._steps_attack = None  # do not file the loaded value under the old attack
            entry = _entry(attack)
            default = entry.param("steps").default if entry.has("steps") else DEFAULT_STEPS
            self.steps.setValue(int(self.settings.value(f"attack/steps/{attack}", default)))
            self._steps_attack = attack
        self._update_enabled()

    def _on_steps(self, steps: int) -> None:
        if self._steps_attack is not None:
            self.settings.setValue(f"attack/steps/{self._steps_attack}", steps)

    def _update_enabled(self) -> None:
        """Enable the fields the chosen attack's catalogue entry takes."""
        access, attack = self.access.currentData(), self.attack.currentData()
        entry = _entry(attack)
        has = entry.has if entry is not None else (lambda _name: False)
        minimal = entry is not None and not entry.budgeted
        self.surrogate.setEnabled(access == "transfer")
        self.steps.setEnabled(has("steps"))
        self.steps.setToolTip(
            entry.param("steps").help if has("steps") else "Iterations of the attack"
        )
        self.alpha.setEnabled(has("alpha"))
        self.budget.setEnabled(has("max_queries"))
        for widget in (self.eps_label, self.eps_slider, self.eps_spin):
            widget.setEnabled(not minimal)
        self.eps_spin.setToolTip(
            "unused: DeepFool and C&W look for the smallest L2 perturbation themselves; the "
            "measures show what they needed"
            if minimal
            else "L∞ radius in pixel units: 0.1 = 25.5 grey levels of 255"
        )
        self.form.setRowVisible(self.apgd_loss, has("loss"))
        self.form.setRowVisible(self.cw_row, has("c"))
        untargeted = entry.untargeted.split(". ")[0] if entry is not None else ""
        if untargeted:
            self.targeted.setChecked(False)
        self.targeted.setEnabled(not untargeted)
        self.targeted.setToolTip(untargeted)
        self.min_eps_button.setEnabled(access == "white-box")

    def true_label(self) -> int:
        """The true class chosen in the controls, or -1 for the model's own prediction."""
        label = self.true_class.currentData()
        return -1 if label is None else int(label)

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
        self._clear_panels()
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
                self.message.setText(
                    f"{model.name} gives no gradients to its input: only "
                    "black-box attacks (transfer, scores only) can run on it."
                )
            elif self.message.text().endswith("can run on it."):
                self.message.setText("")

        self.jobs.start(
            job,
            "Checking gradients",
            show_in_status=False,
            connect=lambda w: w.returned.connect(done),
        )

    def _clear_panels(self, *_args) -> None:
        """Results of the bottom panels belong to one image and model."""
        self.boundary.clear()
        self.defences.clear()

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
        self.survival.setText("")

    def _on_eps(self, eps: float) -> None:
        self.eps_slider.blockSignals(True)
        self.eps_slider.setValue(round(eps * SLIDER_STEPS))
        self.eps_slider.blockSignals(False)
        self.settings.setValue("attack/eps", eps)
        if self.outcome is not None and self.outcome.direction is not None:
            self._slider_update(self.eps)
        elif (
            self.outcome is not None
            and self.access.currentData() == "white-box"
            and not self.outcome.spec.minimal
        ):
            self._rerun.start()  # iterative white-box: rerun when the slider rests

    @property
    def jpeg_quality(self) -> int:
        """The JPEG quality to re-check results at, 0 when the JPEG check is off."""
        return self.jpeg_q.value() if self.jpeg_check.isChecked() else 0

    def _on_jpeg(self, *_args) -> None:
        self.settings.setValue("attack/jpeg_check", self.jpeg_check.isChecked())
        self.settings.setValue("attack/jpeg_quality", self.jpeg_q.value())
        self.jpeg_q.setEnabled(self.jpeg_check.isChecked())
        if self.outcome is not None:
            self.recheck_survival()

    def recheck_survival(self) -> JobWorker | None:
        """Re-check the shown result at the current JPEG setting (forward passes, on a job);
        one in flight at a time, the latest setting queued."""
        if self._survival_owner.busy:
            self._survival_owner.request(self.recheck_survival)
            return None
        model, outcome, quality = self.state.model, self.outcome, self.jpeg_quality
        if model is None or outcome is None:
            return None

        def checked(new) -> None:
            if self.outcome is outcome:  # not replaced by a newer attack meanwhile
                self.outcome = new
                self.survival.setText(survival_text(new.survival, model.class_names))
                self.survival_checked.emit(new)

        return self._survival_owner.start(
            lambda: _survival_job(model, outcome, quality),
            "Survival check",
            "The attack failed",
            show_in_status=False,
            connect=lambda w: w.returned.connect(checked),
        )

    def _on_quantise(self, on: bool) -> None:
        self.settings.setValue("attack/quantise", on)
        if self.outcome is not None and self.access.currentData() == "white-box":
            self._rerun.start()

    # -- running ------------------------------------------------------------------------------
    def show_panel(self, panel: QWidget) -> None:
        """Bring ``panel`` (one of the bottom panels, each in its scroll area) to the front."""
        for index in range(self.panels.count()):
            if self.panels.widget(index).widget() is panel:
                self.panels.setCurrentIndex(index)
                return
        raise ValueError(f"{type(panel).__name__} is not one of the Attack tab's panels")

    def job_config(self):
        """(kind, config) of the tab's headless job (File ▸ Export job as config): robust
        accuracy, the distance to the boundary, the input defence, the universal perturbation or
        the patch while its panel is shown, else the ε sweep."""
        shown = self.panels.currentWidget().widget()
        if shown is self.robust:
            return "robust", self.robust.config()
        if shown is self.boundary:
            return "boundary", self.boundary.config()
        if shown is self.defences:
            return "defence-eval", self.defences.config()
        if shown in (self.universal, self.patch):
            return shown.job_config()
        return "sweep", self.sweep.config()

    def spec(self):
        from advstudio.core.attacks.lab import AttackSpec

        return AttackSpec(
            attack=self.attack.currentData(),
            access=self.access.currentData(),
            eps=self.eps,
            steps=self.steps.value(),
            alpha=self.alpha.value(),
            targeted=self.targeted.isChecked(),
            target=self.target.currentData() if self.targeted.isChecked() else -1,
            label=self.true_label(),
            max_queries=self.budget.value(),
            loss=self.apgd_loss.currentData(),
            c=self.cw_c.value(),
            kappa=self.cw_kappa.value(),
            quantise=self.quantise.isChecked(),
            jpeg_quality=self.jpeg_quality,
        )

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
        return self.jobs.start(
            lambda: attack_image(model, x, spec, surrogate),
            f"{spec.attack.upper()} attack",
            connect=connect,
        )

    def _load_surrogate_then_attack(self) -> None:
        key = self.surrogate.currentData()

        def loaded(model) -> None:
            self.surrogates[key] = model
            self.run_attack()

        self.message.setText(f"loading the surrogate {key}…")
        self.jobs.start(
            lambda: _load_surrogate_job(key, self.state.device),
            "Loading surrogate",
            connect=lambda w: (w.returned.connect(loaded), w.errored.connect(self._on_error)),
        )

    def _on_error(self, exc: BaseException) -> None:
        report_job_error(self, self.message, "The attack failed", exc)

    def _slider_update(self, eps: float) -> None:
        """Coalesce slider moves: one re-application in flight, the latest eps queued."""
        if self._slider_owner.busy:
            self._slider_owner.request(
                lambda: self._slider_update(eps) if self.outcome is not None else None
            )
            return
        model, outcome = self.state.model, self.outcome
        self._slider_owner.start(
            lambda: _fgsm_at_job(model, outcome, eps),
            "FGSM ε",
            "The attack failed",
            show_in_status=False,
            connect=lambda w: w.returned.connect(self._show_moved),
        )

    def _show_moved(self, outcome) -> None:
        """A slider move shows the image after one forward pass, then checks saving."""
        self._show_outcome(outcome)
        self.recheck_survival()

    def _show_outcome(self, outcome) -> None:
        from advstudio.core.images import from_tensor

        if self.state.model is None:
            return
        self.outcome = outcome
        names = self.state.model.class_names
        r = outcome.report
        self.adversarial.set_pixels(
            from_tensor(outcome.x_adv),
            f"Adversarial: {names[r.pred_after]} ({r.conf_after * 100:.1f} %)",
        )
        rgb, amp = perturbation_rgb(from_tensor(outcome.perturbation))
        self.perturbation.set_pixels(rgb, f"Perturbation ×{amp:.1f} (red brighter, blue darker)")
        self.original.set_pixels(
            from_tensor(outcome.x),
            f"Original: {names[r.pred_before]} ({r.conf_before * 100:.1f} %)",
        )
        self.before.set_prediction(outcome.before.names, outcome.before.probs)
        self.after.set_prediction(outcome.after.names, outcome.after.probs)
        verdict = (
            "<span style='color:#b2182b'><b>fooled</b></span>"
            if r.success
            else "<span style='color:#2166ac'><b>not fooled</b></span>"
        )
        rows = [
            f"{verdict}: {names[r.pred_before]} → {names[r.pred_after]}",
            f"L∞ {r.linf:.4f} · L2 {r.l2:.3f} · L0 {r.l0:,} values",
            f"PSNR {r.psnr:.1f} dB · SSIM {r.ssim:.3f}",
        ]
        if outcome.queries is not None:
            rows.append(f"queries to the target: {outcome.queries:,}")
        if outcome.surrogate_success is not None:
            rows.append(f"surrogate fooled: {'yes' if outcome.surrogate_success else 'no'}")
        if outcome.spec.minimal:
            rows.append(
                f"{outcome.spec.entry.short} needed L2 {r.l2:.3f}, "
                f"L∞ {r.linf * 255:.1f}/255 (no ε budget)"
            )
        if outcome.quantise_method is not None:
            rows.append(f"on the 1/255 grid: {quantise_note(outcome.quantise_method)}")
        self.measures.setText("<br>".join(rows))
        self.defences.refresh()
        self.survival.setText(
            "" if outcome.survival is None else survival_text(outcome.survival, names)
        )
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
        label = (
            spec.label if spec.label >= 0 else model.predict(x.to(model.device), 1)[0].indices[0]
        )

        def found(eps) -> None:
            if eps is None:
                self.message.setText("Even ε = 1 does not flip this image with FGSM.")
                return
            self._note = (
                f"Smallest FGSM ε that flips the prediction: {eps:.4f} "
                f"({eps * 255:.1f} grey levels)"
            )
            self.message.setText(self._note)
            self.access.setCurrentIndex(self.access.findData("white-box"))
            self.attack.setCurrentIndex(self.attack.findData("fgsm"))
            self.set_eps(eps)
            self.run_attack()

        return self.jobs.start(
            lambda: _minimal_eps_job(model, x, label, spec.targeted, spec.target),
            "Smallest ε",
            connect=lambda w: (w.returned.connect(found), w.errored.connect(self._on_error)),
        )

    # -- export -------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.outcome is None:
            return
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(
            self, "Export adversarial image", str(start / "adversarial.png"), "PNG (*.png)"
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export_to(Path(path))

    def export_to(self, png: Path) -> list[Path]:
        """``png``: the adversarial image (8-bit, lossless); beside it ``*_perturbation.npy``
        (float32 x_adv - x), ``*_perturbation.png`` (the colour map) and ``*_summary.json``.

        Refuses nothing, but re-reads the written PNG and warns (a non-modal message box,
        ``self.export_warning``) when the saved file no longer fools the model."""
        from dataclasses import asdict

        from advstudio.core.images import from_tensor, save_png

        outcome = self.outcome
        save_png(from_tensor(outcome.x_adv), png)
        saved_pred, saved_fools = self._saved_verdict(png, outcome)
        delta = from_tensor(outcome.perturbation)
        np.save(png.with_name(png.stem + "_perturbation.npy"), delta)
        rgb, amp = perturbation_rgb(delta)
        save_png(rgb.astype(np.float32) / 255, png.with_name(png.stem + "_perturbation.png"))
        names = self.state.model.class_names
        s = outcome.survival
        summary = {
            "model": self.state.model_key,
            "image": str(getattr(self.state.image, "path", "")),
            "spec": {**asdict(outcome.spec), "access": outcome.spec.access.value},
            "report": asdict(outcome.report),
            "class_before": names[outcome.report.pred_before],
            "class_after": names[outcome.report.pred_after],
            "queries": outcome.queries,
            "perturbation_amplification": amp,
            "saved_png": {"class": names[saved_pred], "adversarial": saved_fools},
            "survives_jpeg": None
            if s is None or s.adv_jpeg is None
            else {"quality": s.jpeg_quality, "adversarial": bool(s.adv_jpeg[0])},
            "quantised": outcome.quantise_method,
        }
        out = png.with_name(png.stem + "_summary.json")
        out.write_text(json.dumps(summary, indent=2))
        self.message.setText(f"Exported {png.name} and its perturbation and summary.")
        if outcome.report.success and not saved_fools:
            self._warn_export(png, names[saved_pred])
        return [
            png,
            png.with_name(png.stem + "_perturbation.npy"),
            png.with_name(png.stem + "_perturbation.png"),
            out,
        ]

    def _saved_verdict(self, png: Path, outcome) -> tuple[int, bool]:
        """The model's class for the PNG as written, and whether it is still adversarial (one
        forward pass)."""
        from advstudio.core.images import load_image, to_tensor

        model = self.state.model
        pred = model.predict(to_tensor(load_image(png)).to(model.device), k=1)[0].indices[0]
        spec = outcome.spec
        return pred, (pred == spec.target if spec.targeted else pred != outcome.label)

    def _warn_export(self, png: Path, saved_class: str) -> None:
        text = (
            f"{png.name} was written, but it no longer fools the model: rounded to 8 bits, "
            f"as the PNG stores it, it reads as {saved_class} again. Tick "
            '"Quantisation-aware" and attack again for an image that survives saving.'
        )
        self.message.setText(
            f"Exported {png.name}, but the saved PNG reads as {saved_class} "
            "again (see the warning)."
        )
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "The saved image is not adversarial",
            text,
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setWindowModality(Qt.WindowModality.NonModal)  # the window stays usable
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.export_warning = box


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(AttackTab)
