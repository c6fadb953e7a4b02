"""Universal adversarial perturbation (Moosavi-Dezfooli et al. 2017) of the current model,
whatever its input: fitted on images of the data set chosen with the data-set picker (fitted
to the model's channels and size) at the Attack tab's ε, untargeted or towards a class the
model names; its fooling rate on held-out images of that set; the perturbation shown amplified
(grey = 0, full colour = ±ε per channel) and applied to the current image (as the model sees
it) with the model's new prediction, again whenever the user opens another image.

Its fooling rate against ε: one job over the ε values asked for, either one fit per ε or the
fitted perturbation rescaled, plotted point by point (held-out solid, fitting dashed), with
progress and cancel."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.widgets.dataset_picker import DatasetPicker
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker

FIT, HELD_OUT = 200, 200  # images of the data set to fit on, and to judge on
SEED = 0
DEFAULT_EPS = "0.02, 0.05, 0.1, 0.15, 0.2"


def parse_eps(text: str) -> list[float]:
    """``"0.05, 0.1"`` -> ``[0.05, 0.1]`` (pixel units); a bad entry is a :class:`ConfigError`."""
    from advstudio.core.attacks.whitebox import check_eps

    out = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(check_eps(part.strip(), "ε"))
            except ConfigError:
                raise ConfigError(f"ε {part.strip()!r} must be a number in [0, 1]") from None
    if not out:
        raise ConfigError("give at least one ε (pixel units, e.g. 0.05, 0.1, 0.2)")
    return out


class UniversalPanel(QWidget):
    """``lab`` is the Attack tab. ``fitted(UniversalResult)`` when a fit completes;
    ``eps_curve(EpsCurve)`` when a curve against ε completes."""

    fitted = Signal(object)
    eps_curve = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.result, self.curve = lab, None, None
        self.n_held = HELD_OUT
        self.data = DatasetPicker(settings, fit=True)
        self.data.setToolTip("The images the perturbation is fitted and judged on")
        self.target = QComboBox()
        self.target.setMinimumContentsLength(12)
        self.target.setToolTip(
            "Untargeted: change as many predictions as possible; towards k: "
            "send as many images as possible to class k"
        )
        self.run_button = QPushButton("Fit at the tab's ε")
        self.run_button.setToolTip(
            f"Algorithm 1 on {FIT} images of the data set at the controls' ε "
            f"(at most 5 passes), judged on {HELD_OUT} others"
        )
        self.run_button.clicked.connect(lambda: self.run())
        self.epsilons = QLineEdit(DEFAULT_EPS)
        self.epsilons.setToolTip("ε values (L∞, pixel units), separated by commas")
        self.curve_mode = QComboBox()
        self.curve_mode.addItem("fit at each ε", "refit")
        self.curve_mode.addItem("rescale the fitted one", "rescale")
        self.curve_mode.setToolTip(
            "Fit at each ε: Algorithm 1 once per ε (each point its own perturbation); "
            "rescale: the fitted perturbation times ε / its ε (fast; a fit at each ε "
            "usually fools more)"
        )
        self.curve_button = QPushButton("Fooling rate vs ε")
        self.curve_button.clicked.connect(lambda: self.run_eps_curve())
        import pyqtgraph as pg

        from advstudio.ui.attack.patch_panel import compact_plot

        self.plot = compact_plot("ε (L∞, pixel units)", "fooling rate")
        self.plot.setXRange(0, 0.21)
        legend = self.plot.addLegend(offset=(8, 8))
        legend.setLabelTextColor("#333")
        self.held_points = self.plot.plot(
            [], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=7, name="held-out"
        )
        self.fit_points = self.plot.plot(
            [],
            [],
            pen=pg.mkPen("#d62728", width=1, style=Qt.PenStyle.DashLine),
            symbol="x",
            symbolSize=6,
            name="fitting",
        )
        self.perturbation = ImageView("Perturbation (amplified)")
        self.applied = ImageView("Current image + perturbation")
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(lambda: self.job.cancel())
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)

        # three columns (the panel sits in the lower part of the tab, ~250 px at 1280×720):
        # the controls, the perturbation and the image, the curve against ε
        form = QGridLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(4)
        form.addWidget(self.target, 0, 0, 1, 2)
        form.addWidget(self.run_button, 0, 2)
        form.addWidget(QLabel("data"), 1, 0)
        form.addWidget(self.data, 1, 1, 1, 2)
        form.addWidget(QLabel("ε"), 2, 0)
        form.addWidget(self.epsilons, 2, 1, 1, 2)
        form.addWidget(self.curve_mode, 3, 1)
        form.addWidget(self.curve_button, 3, 2)
        form.setRowStretch(4, 1)
        form.setColumnStretch(1, 1)
        form_w = QWidget()
        form_w.setLayout(form)
        form_w.setFixedWidth(360)
        views = QHBoxLayout()
        views.addWidget(form_w)
        views.addWidget(self.perturbation, 1)
        views.addWidget(self.applied, 1)
        views.addWidget(self.plot, 2)
        bottom = QHBoxLayout()  # one line: the status, and the progress while a job runs
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        self.progress.setFixedWidth(260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(views, 1)
        layout.addLayout(bottom)
        lab.state.image_changed.connect(lambda *_: self.show_applied())
        lab.state.model_changed.connect(self._on_model)
        self._on_model(lab.state.model)

    # -- the model and the data ---------------------------------------------------------------
    def _on_model(self, model) -> None:
        previous = self.target.currentData()
        self.target.clear()
        self.target.addItem("untargeted", -1)
        names = list(getattr(model, "class_names", []) or [])
        for k, name in enumerate(names):
            self.target.addItem(f"towards {k}" if name == str(k) else f"towards {name}", k)
        index = self.target.findData(previous) if previous is not None else 0
        self.target.setCurrentIndex(max(0, index))
        if self.result is not None and model is not None:
            if tuple(self.result.v.shape) != tuple(model.input_shape):
                self.result = None
                self.perturbation.set_pixels(None)
        self.show_applied()

    def _target_name(self, k: int | None) -> str:
        names = getattr(self.lab.state.model, "class_names", None) or []
        return str(k) if k is None or k >= len(names) else names[k]

    def _noun(self) -> str:
        try:
            return "digits" if self.data.dataset() == "digits" else "images"
        except ConfigError:
            return "images"

    def _loader(self, model):
        dataset, split, fit = self.data.dataset(), self.data.split(), self.data.fit()
        n_fit, n_held = FIT, HELD_OUT

        def load():
            from advstudio.core.attacks.patch import train_test_images

            x_fit, x_held, lines = train_test_images(
                dataset, split, fit, model, n_fit, n_held, SEED
            )
            return x_fit.to(model.device), x_held.to(model.device), lines

        return load

    def _start(self, job, title: str, failure: str, done) -> JobWorker | None:
        def connect(w: JobWorker) -> None:
            w.returned.connect(done)
            w.progress.connect(self._on_progress)
            w.metrics.connect(self._on_metrics)
            w.finished.connect(self._job_ended)

        worker = self.job.start(job, title, failure, connect=connect)
        if worker is not None:
            self.progress.setRange(0, 0)
            self.progress.show()
            self.cancel_button.show()
            self.run_button.setEnabled(False)
            self.curve_button.setEnabled(False)
        return worker

    def _on_progress(self, p) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        self.progress.setFormat(p.message or "%p %")

    def _on_metrics(self, m) -> None:
        if "eps" in m.values:
            self._xs.append(m.values["eps"])
            self._held.append(m.values["fooling_rate"])
            self._fit.append(m.values["fit_rate"])
            self.held_points.setData(self._xs, self._held)
            self.fit_points.setData(self._xs, self._fit)

    def _job_ended(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.run_button.setEnabled(True)
        self.curve_button.setEnabled(True)
        if self.job.worker is not None and self.job.worker.cancel_requested:
            self.status.setText("cancelled.")

    # -- one fit ------------------------------------------------------------------------------
    def run(self) -> JobWorker | None:
        model = self.lab.state.model
        if model is None:
            self.status.setText("Load a model first.")
            return None
        try:
            load = self._loader(model)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        from advstudio.core.attacks.universal import universal_job
        from advstudio.core.jobs import Log

        eps, target = self.lab.eps, self.target.currentData()
        target = None if target is None or target < 0 else target

        def job():
            x_fit, x_held, lines = load()
            for line in lines:
                yield Log(line)
            return (yield from universal_job(model, x_fit, x_held, eps, target=target, seed=SEED))

        self.status.setText(f"fitting at ε {eps:g}…")
        return self._start(job, "Universal perturbation", "The fit failed", self._show)

    def _show(self, result) -> None:
        from advstudio.core.images import from_tensor

        self.result = result
        self.n_held = result.n_held
        scale = 0.5 / result.eps if result.eps > 0 else 0.0
        self.perturbation.set_pixels(
            from_tensor((0.5 + scale * result.v).clamp(0, 1)),
            f"Perturbation, ε {result.eps:g} (amplified)",
        )
        aim = "fooled" if result.target is None else f"sent to {self._target_name(result.target)}"
        self.status.setText(
            f"ε {result.eps:g}: {result.held_out_rate:.1%} of {self.n_held} "
            f"held-out {self._noun()} {aim} ({result.fit_rate:.1%} of the fitting "
            "ones)."
        )
        self.show_applied()
        self.fitted.emit(result)

    # -- the curve against ε ------------------------------------------------------------------
    def run_eps_curve(self) -> JobWorker | None:
        """One job over the ε field's values: a fit per ε, or the fitted one rescaled."""
        model, mode = self.lab.state.model, self.curve_mode.currentData()
        if model is None:
            self.status.setText("Load a model first.")
            return None
        if mode == "rescale" and self.result is None:
            self.status.setText("Fit a perturbation first (or choose 'fit at each ε').")
            return None
        try:
            eps_values = parse_eps(self.epsilons.text())
            load = self._loader(model)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        from advstudio.core.attacks.universal import eps_curve_job, rescaled_curve_job
        from advstudio.core.jobs import Log

        result = self.result
        if mode == "rescale":
            target = result.target
        else:
            target = self.target.currentData()
            target = None if target is None or target < 0 else target

        def job():
            x_fit, x_held, lines = load()
            for line in lines:
                yield Log(line)
            if mode == "rescale":
                v = result.v.to(model.device)
                return (
                    yield from rescaled_curve_job(
                        model, x_fit, x_held, v, result.eps, eps_values, target
                    )
                )
            return (
                yield from eps_curve_job(model, x_fit, x_held, eps_values, target=target, seed=SEED)
            )

        self._xs, self._held, self._fit = [], [], []
        self.held_points.setData([], [])
        self.fit_points.setData([], [])
        self.plot.setXRange(0, max(eps_values) * 1.05 + 1e-3)
        self.status.setText(f"fooling rate at {len(eps_values)} ε values…")
        return self._start(
            job, "Universal fooling rate vs ε", "The curve against ε failed", self._show_curve
        )

    def _show_curve(self, curve) -> None:
        self.curve = curve
        self.held_points.setData(curve.eps, curve.held_out)
        self.fit_points.setData(curve.eps, curve.fit)
        how = "a fit per ε" if curve.refit else "the fitted one rescaled"
        self.status.setText(
            f"Held-out fooling rate ({how}): "
            + ", ".join(f"ε {e:g} → {r:.0%}" for e, r in zip(curve.eps, curve.held_out))
            + "."
        )
        self.eps_curve.emit(curve)

    # -- on the current image -----------------------------------------------------------------
    def show_applied(self) -> None:
        """The perturbation on the current image as the model sees it, with its prediction."""
        model, image = self.lab.state.model, self.lab.state.image
        if self.result is None or model is None or image is None:
            self.applied.set_pixels(None)
            return
        import torch

        from advstudio.core.attacks.universal import apply
        from advstudio.core.images import from_tensor, to_tensor

        with torch.no_grad():
            x = to_tensor(image).to(model.device)
            if hasattr(model, "prepare"):
                x = model.prepare(x)
            if x.shape[1:] != self.result.v.shape:
                self.applied.set_pixels(None, "the perturbation is of another model's input")
                return
            x = apply(x, self.result.v.to(model.device))
        top = model.predict(x, k=1)[0]
        self.applied.set_pixels(
            from_tensor(x),
            f"Current image + perturbation: "
            f"{model.class_names[top.indices[0]]} "
            f"({top.probs[0] * 100:.1f} %)",
        )
