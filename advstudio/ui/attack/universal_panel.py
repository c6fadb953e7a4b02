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
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.attack.dataset_job_panel import DatasetJobPanel
from advstudio.ui.widgets.image_view import ImageView
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


def run_universal(config, model, fitted):
    """The core's ``universal`` job (imported when first run: the tab is built before torch
    work starts)."""
    from advstudio.core.attacks.dataset_attacks import run_universal as job

    return job(config, model, fitted)


class UniversalPanel(DatasetJobPanel):
    """``lab`` is the Attack tab. ``fitted(UniversalResult)`` when a fit completes;
    ``eps_curve(EpsCurve)`` when a curve against ε completes."""

    KIND = "universal"
    fitted = Signal(object)
    eps_curve = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(lab, jobs, settings, parent)
        self.result, self.curve = None, None
        self._fitted_config = None  # the UniversalConfig the perturbation was fitted with
        self.n_held = HELD_OUT
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(views, 1)
        layout.addLayout(self.status_row())
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

    def _target(self) -> int | None:
        k = self.target.currentData()
        return None if k is None or k < 0 else k

    def config(self, curve: str = "none", epsilons: tuple[float, ...] = ()):
        """The ``universal`` job config of the controls at the tab's ε (a ConfigError names what
        is wrong): what Fit runs (``curve="none"``), and File ▸ Export job as config writes."""
        from advstudio.core.attacks.dataset_attacks import UniversalConfig

        state = self.lab.state
        if state.model is None:
            raise ConfigError("pick a model first")
        return UniversalConfig(
            model=state.model_key,
            card=state.model_card,
            eps=self.lab.eps,
            target=self._target(),
            curve=curve,
            epsilons=tuple(epsilons) or UniversalConfig.epsilons,
            n_fit=FIT,
            n_held=HELD_OUT,
            dataset=self.data.dataset(),
            split=self.data.split(),
            fit=self.data.fit(),
            seed=SEED,
            device=state.device,
        )

    def _on_metrics(self, m) -> None:
        if "eps" in m.values:
            self._xs.append(m.values["eps"])
            self._held.append(m.values["fooling_rate"])
            self._fit.append(m.values["fit_rate"])
            self.held_points.setData(self._xs, self._held)
            self.fit_points.setData(self._xs, self._fit)

    # -- one fit ------------------------------------------------------------------------------
    def run(self) -> JobWorker | None:
        if self.lab.state.model is None:
            self.status.setText("Load a model first.")
            return None
        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None

        def done(run) -> None:
            self._fitted_config = config
            self._show(run.universal_result())

        self.status.setText(f"fitting at ε {config.eps:g}…")
        return self._start(
            run_universal, config, None, "Universal perturbation", "The fit failed", done
        )

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
            eps_values = tuple(parse_eps(self.epsilons.text()))
            if mode == "rescale":  # the fitted one: the settings it was fitted with
                config = self._rescale_config(
                    self._fitted_config,
                    {"eps": self.result.eps, "target": self.result.target},
                    curve="rescale",
                    epsilons=eps_values,
                )
            else:
                config = self.config(curve="refit", epsilons=eps_values)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        fitted = self.result if mode == "rescale" else None
        self._xs, self._held, self._fit = [], [], []
        self.held_points.setData([], [])
        self.fit_points.setData([], [])
        self.plot.setXRange(0, max(eps_values) * 1.05 + 1e-3)
        self.status.setText(f"fooling rate at {len(eps_values)} ε values…")
        return self._start(
            run_universal,
            config,
            fitted,
            "Universal fooling rate vs ε",
            "The curve against ε failed",
            lambda run: self._show_curve(run.eps_curve()),
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
