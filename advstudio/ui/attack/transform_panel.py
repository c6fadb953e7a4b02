"""Input-transform defences and the adaptive attack, on the current image or on images of a
data set (any shape and class count; JPEG, bit depth, median, random resize + pad and noise all
work per channel in colour).

Pick a defence (JPEG quality q, bit depth b, median window k) and see side by side what the
defended model says about the clean image, after plain PGD through the defence (gradient masking
makes it fail, or, for JPEG, not start at all: "no gradient"), and after PGD with BPDA (the
straight-through backward pass), which succeeds; for a randomised defence (random resize + pad,
Gaussian noise) a fourth column, EoT-PGD (Athalye et al. 2018), averages the gradient over
draws. On a data set (:mod:`advstudio.core.attacks.defence_eval`, recorded as a run) each
column gives the defended model's accuracy and shows the first image. Beside it, the
feature-squeezing detector: fitted on clean images of the chosen data set for a chosen
false-alarm rate, it scores the original and the adversarial image of the Attack tab.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, QSize, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.attack.source import ImageSource
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker

THUMB = QSize(84, 84)
CLEAN_IMAGES = 500  # clean images of the data set the detector's threshold is fitted on
PARAMETER_HELP = {
    "jpeg": "JPEG quality, a whole number from 1 (worst) to 100 (best)",
    "bit_depth": "bits kept per pixel, a whole number from 1 to 8 (8 = an ordinary 8-bit image)",
    "median": "median window in pixels, a whole number from 1 to 7 (1 leaves the image as it "
    "is; Xu et al. use 2 for digits)",
    "resize_pad": "largest shrink in pixels before the random zero padding, 0 to 14 (Xie et "
    "al. 2018)",
    "noise": "noise standard deviation in % of the pixel range, 0 to 100 (25 = σ 0.25)",
}


def _verdict(success: bool) -> str:
    return "fooled" if success else "not fooled"


class TransformPanel(QWidget):
    """``lab`` is the Attack tab (image, model, ε, true class, its latest outcome).
    ``compared(DefenceComparison)`` (current image), ``evaluated(DefenceEval)`` (data set) and
    ``detector_checked(DetectorCheck)`` after each job."""

    compared = Signal(object)
    evaluated = Signal(object)
    detector_checked = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        from advstudio.core.attacks.lab import DEFENCES

        self.lab, self.jobs, self.settings = lab, jobs, settings
        self.comparison = self.evaluation = None
        self.check = None
        self._clean = None  # (data set, split, fit, input shape) -> clean images, cached
        self.source = ImageSource(settings, "defence", data_always=True)
        self._refit = QTimer(self, singleShot=True, interval=250)
        self._refit.timeout.connect(lambda: self.fit_detector())

        self.defence = QComboBox()
        for key, text in DEFENCES.items():
            self.defence.addItem(text, key)
        self.defence.setToolTip("The input transform put in front of the model")
        self.parameter = QSpinBox()
        self.parameter_label = QLabel("q")
        self.steps = QSpinBox(
            minimum=1, maximum=1000, value=int(settings.value("defence/pgd_steps", 20))
        )
        self.steps.setToolTip(
            "PGD steps (step size 2.5 ε / steps, random start); ε comes from the attack controls"
        )
        self.run_button = QPushButton("Attack through it")
        self.run_button.setToolTip(
            "PGD on the defended model, plain and with BPDA, at the controls' ε"
        )
        self.run_button.clicked.connect(lambda: self.run())
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)
        row = QHBoxLayout()
        row.addWidget(QLabel("Defence"))
        row.addWidget(self.defence)
        row.addWidget(self.parameter_label)
        row.addWidget(self.parameter)
        row.addWidget(QLabel("PGD steps"))
        row.addWidget(self.steps)
        row.addWidget(self.run_button)
        row.addStretch(1)
        self.views, self._tips = {}, {}
        views = QHBoxLayout()
        for key, title, tip in (
            ("clean", "Defended, clean", "The defended model on the clean image"),
            (
                "plain",
                "Plain PGD",
                "PGD differentiating through the defence: gradient masking stalls it",
            ),
            (
                "bpda",
                "BPDA",
                "PGD with the transform's backward pass replaced by the "
                "identity (Athalye et al. 2018)",
            ),
            (
                "eot",
                "EoT",
                "EoT-PGD: each step follows the gradient averaged over 10 "
                "draws of the random defence (randomised defences only)",
            ),
        ):
            view = ImageView(title, "")
            view.picture.setMinimumSize(THUMB)
            view.setToolTip(tip)
            self.views[key], self._tips[key] = view, tip
            views.addWidget(view)
        left = QVBoxLayout()
        left.addWidget(self.source)
        left.addLayout(row)
        left.addLayout(views, 1)
        left.addWidget(self.status)

        self.rate = QDoubleSpinBox(
            decimals=3,
            minimum=0.001,
            maximum=0.999,
            singleStep=0.01,
            value=float(settings.value("defence/false_alarm_rate", 0.05)),
        )
        self.rate.setToolTip(
            "Share of clean images the detector may flag, strictly between 0 and 1 (0.05 = 5 %)"
        )
        self.fit_button = QPushButton("Fit detector")
        self.fit_button.setToolTip(
            f"Fit the threshold on up to {CLEAN_IMAGES} clean images of the data set on the "
            "left and score the original and adversarial image"
        )
        self.fit_button.clicked.connect(lambda: self.fit_detector())
        self.threshold_row = QLabel("—")
        self.detector_job = JobOwner(self, jobs, self.threshold_row)
        self.original_row = QLabel("—")
        self.adversarial_row = QLabel("—")
        for label in (self.threshold_row, self.original_row, self.adversarial_row):
            label.setWordWrap(True)
        detector = QGroupBox("Feature-squeezing detector")
        detector.setToolTip(
            "Xu et al. 2018: flags an input when squeezing it (grey: 1-bit depth or a 2×2 "
            "median; colour: 5-bit depth or a 2×2 median) changes the model's softmax by "
            "more than the threshold (L1)"
        )
        form = QFormLayout(detector)
        rate_row = QHBoxLayout()
        rate_row.addWidget(self.rate)
        rate_row.addWidget(self.fit_button)
        form.addRow("False alarms", rate_row)
        form.addRow("Threshold", self.threshold_row)
        form.addRow("Original", self.original_row)
        form.addRow("Adversarial", self.adversarial_row)
        detector.setFixedWidth(330)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(detector)

        self.defence.currentIndexChanged.connect(self._on_defence)
        self.parameter.valueChanged.connect(self._remember_parameter)
        self.rate.valueChanged.connect(self._on_rate)
        index = self.defence.findData(str(settings.value("defence/kind", "bit_depth")))
        self.defence.setCurrentIndex(max(index, 0))
        self._on_defence()

    # -- defence ----------------------------------------------------------------------------------
    def _on_defence(self) -> None:
        from advstudio.core.attacks.lab import DEFENCE_PARAMETERS

        key = self.defence.currentData()
        self.settings.setValue("defence/kind", key)
        spec = DEFENCE_PARAMETERS.get(key)
        self.parameter.setVisible(spec is not None)
        self.parameter_label.setVisible(spec is not None)
        if spec is None:
            return
        name, lo, hi, default = spec
        self.parameter.blockSignals(True)
        self.parameter.setRange(lo, hi)
        self.parameter.setValue(int(self.settings.value(f"defence/{key}", default)))
        self.parameter.blockSignals(False)
        self.parameter_label.setText(
            {"quality": "q", "bits": "b", "window": "k", "shrink": "px", "sigma": "σ %"}[name]
        )
        self.parameter.setToolTip(PARAMETER_HELP[key])
        self.parameter_label.setToolTip(PARAMETER_HELP[key])

    def _remember_parameter(self, value: int) -> None:
        self.settings.setValue(f"defence/{self.defence.currentData()}", value)

    def set_defence(self, key: str, parameter: int | None = None) -> None:
        self.defence.setCurrentIndex(self.defence.findData(key))
        if parameter is not None:
            self.parameter.setValue(parameter)

    def clear(self) -> None:
        self.comparison = self.evaluation = self.check = None
        for view in self.views.values():
            view.set_pixels(None)
        self.original_row.setText("—")
        self.adversarial_row.setText("—")

    def run(self, parameter: int | None = None) -> JobWorker | None:
        """Compare plain PGD and BPDA on the defended model. ``parameter`` overrides the spin
        box (scripts); a value outside the defence's range is explained, not run."""
        if self.job.busy:
            return None
        if self.source.on_dataset():
            return self.run_dataset(parameter)
        model, image = self.lab.state.model, self.lab.state.image
        if model is None or image is None:
            self.status.setText("Load an image and a model on the Image tab first.")
            return None
        from advstudio.core.attacks.lab import compare_defence, make_transform
        from advstudio.core.images import to_tensor

        defence = self.defence.currentData()
        value = self.parameter.value() if parameter is None else parameter
        try:
            make_transform(defence, value)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        x, eps, steps, label = (
            to_tensor(image),
            self.lab.eps,
            self.steps.value(),
            self.lab.true_label(),
        )
        self.settings.setValue("defence/pgd_steps", steps)

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda c: self._show(model, c))
            w.finished.connect(lambda: self.run_button.setEnabled(True))

        self.run_button.setEnabled(False)
        self.status.setText(f"attacking {self.defence.currentText()} at ε {eps:g}…")
        return self.job.start(
            lambda: compare_defence(
                model, x, defence=defence, parameter=value, eps=eps, steps=steps, label=label
            ),
            "Defence check",
            "The defence check failed",
            connect=connect,
        )

    def config(self, parameter: int | None = None):
        from advstudio.core.attacks.defence_eval import DefenceEvalConfig

        state = self.lab.state
        if state.model is None:
            raise ConfigError("pick a model first")
        data = self.source.data
        return DefenceEvalConfig(
            model=state.model_key,
            card=state.model_card,
            defence=self.defence.currentData(),
            parameter=self.parameter.value() if parameter is None else parameter,
            eps=self.lab.eps,
            steps=self.steps.value(),
            n_images=self.source.n_images.value(),
            device=state.device,
            dataset=data.dataset(),
            split=data.split(),
            fit=data.fit(),
        )

    def run_dataset(self, parameter: int | None = None) -> JobWorker | None:
        """Accuracy behind the defence on ``n`` images of the chosen data set (recorded)."""
        from advstudio.core.attacks.defence_eval import run_defence_eval

        try:
            config = self.config(parameter)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        self.settings.setValue("defence/pgd_steps", config.steps)

        def connect(w: JobWorker) -> None:
            w.progress.connect(lambda p: self.status.setText(f"{p.message}…"))
            w.returned.connect(self._show_set)
            w.finished.connect(lambda: self.run_button.setEnabled(True))

        self.run_button.setEnabled(False)
        self.status.setText(
            f"attacking {self.defence.currentText()} at ε {config.eps:g} on "
            f"{config.n_images} images…"
        )
        return self.job.start(
            lambda: run_defence_eval(config),
            f"Defence check of {config.model}",
            "The defence check failed",
            connect=connect,
            record=("defence-eval", config),
        )

    def _show_set(self, res) -> None:
        from advstudio.core.images import from_tensor

        self.evaluation = res

        def pct(which: str) -> str:
            return f"{res.accuracy(which) * 100:.1f} %"

        self.views["clean"].set_pixels(
            from_tensor(res.x),
            f"Defended, clean: accuracy {pct('clean')} (undefended {pct('undefended')})",
        )
        titles = {"plain": "Plain PGD", "bpda": "BPDA", "eot": "EoT-PGD"}
        for key, title in titles.items():
            view = self.views[key]
            view.placeholder = ""
            view.setToolTip(self._tips[key])
            if key in res.errors:
                view.placeholder = "no gradient"
                view.set_pixels(None, f"{title}: no gradient: gradient masking, not robustness")
                view.setToolTip(res.errors[key])
            elif key not in res.right:
                view.set_pixels(
                    None,
                    "BPDA: no transform to approximate"
                    if key == "bpda"
                    else "EoT: the defence is not random",
                )
            else:
                view.set_pixels(
                    from_tensor(res.x_adv[key]) if key in res.x_adv else None,
                    f"{title}: accuracy {pct(key)} (first image shown)",
                )
        parts = [f"clean {pct('clean')}"]
        for key, title in titles.items():
            if key in res.errors:
                parts.append(f"{title} could not run (no gradient)")
            elif key in res.right:
                parts.append(f"{title} {pct(key)}")
        self.status.setText(
            f"{self.defence.currentText()} at ε {res.eps:g} on {res.n_images} images, "
            "accuracy: " + "; ".join(parts) + "."
        )
        self.evaluated.emit(res)

    def _show(self, model, c) -> None:
        from advstudio.core.images import from_tensor

        self.comparison = c
        names = model.class_names
        image = self.lab.state.image
        top = c.clean.indices[0]
        mark = "right" if top == c.label else "wrong"
        self.views["clean"].set_pixels(
            image.pixels if image is not None else None,
            f"Defended, clean: {names[top]} ({c.clean.probs[0] * 100:.1f} %, {mark})",
        )
        for key, attack in (("plain", c.plain), ("bpda", c.bpda), ("eot", c.eot)):
            view = self.views[key]
            view.placeholder = ""
            view.setToolTip(self._tips[key])
            if attack is None:
                view.set_pixels(
                    None,
                    "BPDA: no transform to approximate"
                    if key == "bpda"
                    else "EoT: the defence is not random",
                )
            elif attack.error is not None:
                view.placeholder = "no gradient"
                view.set_pixels(
                    None,
                    "Plain PGD: no gradient (the transform is not "
                    "differentiable): gradient masking, not robustness",
                )
                view.setToolTip(attack.error)
            else:
                title = {"plain": "Plain PGD", "bpda": "BPDA", "eot": "EoT-PGD"}[key]
                view.set_pixels(
                    from_tensor(attack.x_adv),
                    f"{title}: {names[attack.pred.indices[0]]} "
                    f"({attack.pred.probs[0] * 100:.1f} %), "
                    f"{_verdict(attack.success)}",
                )
        if c.bpda is None:
            self.status.setText("No defence: plain PGD is the adaptive attack.")
        else:
            plain = (
                "could not run (no gradient)"
                if c.plain.error is not None
                else _verdict(c.plain.success)
            )
            eot = f"; EoT-PGD {_verdict(c.eot.success)}" if c.eot is not None else ""
            self.status.setText(
                f"{self.defence.currentText()} at ε {c.eps:g}: plain PGD "
                f"{plain}; BPDA {_verdict(c.bpda.success)}{eot}."
            )
        self.compared.emit(c)

    # -- detector ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The Attack tab shows a new adversarial image: re-score it if the detector is fitted."""
        if self.check is not None:
            self._refit.start()

    def _on_rate(self, rate: float) -> None:
        self.settings.setValue("defence/false_alarm_rate", rate)
        if self.check is not None:
            self._refit.start()

    def fit_detector(self, rate: float | None = None) -> JobWorker | None:
        """Fit the threshold for the rate (``rate`` overrides the spin box), score the images."""
        model, image = self.lab.state.model, self.lab.state.image
        if model is None or image is None:
            self.threshold_row.setText("Load an image and a model on the Image tab first.")
            return None
        if self.detector_job.busy:  # one fit at a time; fit again once this one is done
            self.detector_job.request(self.fit_detector)
            return None
        from advstudio.core.attacks.lab import detector_check
        from advstudio.core.attacks.transforms import check_rate
        from advstudio.core.images import to_tensor

        value = self.rate.value() if rate is None else rate
        try:
            check_rate(value, "false-alarm rate")
        except ConfigError as exc:
            self.threshold_row.setText(str(exc))
            return None
        data = self.source.data
        try:
            key = (data.dataset(), data.split(), data.fit(), tuple(model.input_shape))
        except ConfigError as exc:
            self.threshold_row.setText(str(exc))
            return None
        x = to_tensor(image)
        outcome = self.lab.outcome
        x_adv = outcome.x_adv if outcome is not None else None
        cached = self._clean[1] if self._clean is not None and self._clean[0] == key else None

        def job():
            from advstudio.core.data.fit import fit_to_model
            from advstudio.core.data.sets import load_dataset

            clean = cached
            if clean is None:  # up to CLEAN_IMAGES, drawn with seed 0 (the sweep's digits)
                loaded = load_dataset(key[0], key[1], limit=CLEAN_IMAGES, seed=0)
                clean = fit_to_model(loaded.x, key[3], key[2])[0]
            return (key, clean), (yield from detector_check(model, x, x_adv, value, clean))

        def connect(w: JobWorker) -> None:
            w.returned.connect(lambda out: self._show_check(*out, x_adv is not None))

        self.threshold_row.setText("fitting…")
        return self.detector_job.start(
            job,
            "Fitting the detector",
            "Fitting the detector failed",
            show_in_status=False,
            connect=connect,
        )

    def _show_check(self, clean, check, has_adversarial: bool) -> None:
        self._clean, self.check = clean, check
        self.threshold_row.setText(
            f"{check.threshold:.4f} (flags {check.false_alarm_rate:.1%} "
            f"of {check.n_clean} clean images)"
        )

        def row(score: float, detected: bool) -> str:
            return f"score {score:.4f} → {'detected' if detected else 'not detected'}"

        self.original_row.setText(row(check.score_original, check.detected_original))
        if has_adversarial:
            self.adversarial_row.setText(row(check.score_adversarial, check.detected_adversarial))
        else:
            self.adversarial_row.setText("press Attack first")
        self.detector_checked.emit(check)
