"""Certify tab: how robust the current model provably is (lower bounds) beside how robust
attacks leave it (upper bounds): the true figure lies between.

- This image: randomised smoothing's prediction, the lower bound on p_A and the certified L2
  radius (Cohen et al. 2019), next to the smallest L2 flips DeepFool and C&W find on the base
  classifier and smooth PGD (Salman et al. 2019) on the smoothed one. The image has no label:
  the base classifier's prediction stands for it.
- Test digits: certified accuracy against radius (lower curve, abstentions wrong) and empirical
  accuracy under smooth PGD (upper curve) in one plot; CSV and PNG export.
- IBP: verified L-inf accuracy at eps beside clean and PGD-20 accuracy (Gowal et al. 2018), or
  the message naming the layer IBP cannot bound.

Its own tab, not a Defence panel: it works on whatever model and image are current (the Defence
tab trains new ones), has its own plot and exports, and the Defence tab is long already.
Every job runs through one job slot (progress bar, Cancel). Run alone:
``python -m advstudio.ui.certify.tab``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advstudio.core.errors import ConfigError
from advstudio.ui.state import AppState
from advstudio.ui.widgets.context_header import ContextHeader
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.live_plot import LivePlot
from advstudio.workers import JobManager, JobWorker

CURVE_POINTS = 60
"""Radii of the certified curve, from 0 to just past the largest certifiable radius."""
LOWER, UPPER = "certified (lower bound)", "smooth PGD (upper bound)"


def _image_job(model, image, config):
    """The current image at the model's geometry, labelled by the base classifier, certified."""
    import torch

    from advstudio.core.certify.job import certify_model
    from advstudio.core.images import to_tensor

    with torch.no_grad():
        x = model.prepare(to_tensor(image).to(model.device))
        y = model(x).argmax(1)
    return (yield from certify_model(model, x, y, config))


def _test_job(model, config, kind):
    """The first ``config.n_images`` test digits at the model's geometry, smoothed or IBP."""
    import torch

    from advstudio.core.certify.job import certify_model, verify_model
    from advstudio.core.data import load_digits

    x, y = load_digits("test")
    with torch.no_grad():
        x = model.prepare(x[: config.n_images].to(model.device))
    run = certify_model if kind == "smoothing" else verify_model
    return (yield from run(model, x, y[: config.n_images], config))


def _l2(value: float | None) -> str:
    return "none found" if value is None else f"{value:.3f}"


class CertifyTab(QWidget):
    image_done = Signal(object)  # SmoothingResult of the current image
    test_done = Signal(object)  # SmoothingResult of the test digits
    ibp_done = Signal(object)  # IbpResult

    def __init__(
        self,
        state: AppState,
        jobs: JobManager,
        models=None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.settings = state, jobs, settings or QSettings()
        self.result = None  # the latest test-set SmoothingResult (what the exports write)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.job = JobOwner(self, jobs, self.status)
        self._build()

    def _build(self) -> None:
        self.sigma = QDoubleSpinBox(
            decimals=2, minimum=0.01, maximum=4.0, singleStep=0.05, value=0.25
        )
        self.sigma.setToolTip("Smoothing noise σ (pixel units): the σ the model was trained at")
        self.n0 = QSpinBox(minimum=1, maximum=100_000, value=100)
        self.n0.setToolTip("Noise samples that choose the class")
        self.n = QSpinBox(minimum=1, maximum=1_000_000, singleStep=1000, value=1000)
        self.n.setToolTip(
            "Noise samples that bound its probability: the largest certifiable "
            "radius is σ·Φ⁻¹(α^(1/n))"
        )
        self.alpha = QDoubleSpinBox(
            decimals=4, minimum=0.0001, maximum=0.4999, singleStep=0.001, value=0.001
        )
        self.alpha.setToolTip("Failure probability of each certificate")
        self.attack = QCheckBox("Attack the smoothed classifier (smooth PGD)")
        self.attack.setChecked(True)
        self.attack.setToolTip(
            "Salman et al.'s PGD on the smoothed classifier at L2 0.25, "
            "0.5, 1, 1.5, 2: the upper bound"
        )
        self.images = QSpinBox(minimum=1, maximum=1000, value=100)
        self.images.setToolTip("Test digits for the curves and IBP (the first ones)")
        self.ibp_eps = QDoubleSpinBox(
            decimals=3, minimum=0.001, maximum=1.0, singleStep=0.05, value=0.1
        )
        self.ibp_eps.setToolTip("L∞ radius IBP verifies and PGD attacks (pixel units)")
        form = QFormLayout()
        for label, w in (
            ("Noise σ", self.sigma),
            ("n0", self.n0),
            ("n", self.n),
            ("α", self.alpha),
            ("", self.attack),
            ("Test digits", self.images),
            ("IBP ε (L∞)", self.ibp_eps),
        ):
            form.addRow(label, w)
        self.image_button = QPushButton("Certify this image")
        self.test_button = QPushButton("Certify test digits")
        self.ibp_button = QPushButton("Verify with IBP")
        self.cancel_button = QPushButton("Cancel")
        self.csv_button = QPushButton("Export CSV…")
        self.png_button = QPushButton("Export PNG…")
        self.image_button.clicked.connect(self.certify_image)
        self.test_button.clicked.connect(self.certify_test)
        self.ibp_button.clicked.connect(self.verify_ibp)
        self.cancel_button.clicked.connect(self.job.cancel)
        self.csv_button.clicked.connect(lambda: self._ask_export("csv"))
        self.png_button.clicked.connect(lambda: self._ask_export("png"))
        buttons = QHBoxLayout()
        for b in (
            self.image_button,
            self.test_button,
            self.ibp_button,
            self.cancel_button,
            self.csv_button,
            self.png_button,
        ):
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.image_text = QLabel("Certify this image: the smoothed prediction and both bounds")
        self.curve_text = QLabel()
        self.ibp_text = QLabel()
        for label in (self.image_text, self.curve_text, self.ibp_text):
            label.setWordWrap(True)
        self.plot = LivePlot("Accuracy against L2 radius", "accuracy", "L2 radius")
        self.plot.set_y_range(0.0, 1.0)
        self.plot.add_curve(LOWER, (31, 119, 180), width=2)
        self.plot.add_curve(UPPER, (214, 39, 40), width=2, symbol="o")
        layout = QVBoxLayout(self)
        self.header = ContextHeader(self.state)
        layout.addWidget(self.header)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        for w in (self.status, self.image_text, self.curve_text, self.ibp_text):
            layout.addWidget(w)
        layout.addWidget(self.plot, 1)
        self._enable()

    # -- configs ------------------------------------------------------------------------------
    def smoothing_config(self, base_attacks: bool = True):
        """The smoothing job's settings; the test-digit curves skip DeepFool and C&W (on the
        base classifier, they bound neither curve, and C&W is most of the time)."""
        from advstudio.core.certify.job import SmoothingConfig

        return SmoothingConfig(
            base_attacks=base_attacks,
            model=self.state.model_key or "model",
            n_images=self.images.value(),
            sigma=self.sigma.value(),
            n0=self.n0.value(),
            n=self.n.value(),
            alpha=self.alpha.value(),
            smooth_pgd=self.attack.isChecked(),
            device=self.state.device,
        )

    def ibp_config(self):
        from advstudio.core.certify.job import IbpConfig

        return IbpConfig(
            model=self.state.model_key or "model",
            n_images=self.images.value(),
            eps=self.ibp_eps.value(),
            device=self.state.device,
        )

    # -- jobs ---------------------------------------------------------------------------------
    def _start(self, factory, title: str, done) -> JobWorker | None:
        if self.state.model is None:
            self.status.setText("Load a model first.")
            return None

        def connect(w: JobWorker) -> None:
            w.progress.connect(
                lambda p: (
                    self.progress.setMaximum(max(p.total, 1)),
                    self.progress.setValue(p.done),
                    self.progress.setFormat(f"{p.phase}: %v/%m" if p.phase else "%p%"),
                )
            )
            w.returned.connect(done)
            w.finished.connect(self._enable)

        self.status.setText(f"{title}…")
        worker = self.job.start(factory, title, f"{title} failed", connect=connect)
        self._enable()
        return worker

    def certify_image(self) -> JobWorker | None:
        if self.state.image is None:
            self.status.setText("Open an image first.")
            return None
        model, image, config = self.state.model, self.state.image, self.smoothing_config()
        return self._start(
            lambda: _image_job(model, image, config), "Certifying the image", self._show_image
        )

    def certify_test(self) -> JobWorker | None:
        model, config = self.state.model, self.smoothing_config(base_attacks=False)
        return self._start(
            lambda: _test_job(model, config, "smoothing"),
            "Certifying test digits",
            self._show_curves,
        )

    def verify_ibp(self) -> JobWorker | None:
        from advstudio.core.certify.ibp import ibp_layers

        model = self.state.model
        if model is not None:
            try:
                ibp_layers(model)
            except ConfigError as exc:
                self.ibp_text.setText(f"IBP cannot verify this model: {exc}")
                return None
        config = self.ibp_config()
        return self._start(
            lambda: _test_job(model, config, "ibp"), "Verifying with IBP", self._show_ibp
        )

    def _enable(self) -> None:
        busy = self.job.busy
        for b in (self.image_button, self.test_button, self.ibp_button):
            b.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for b in (self.csv_button, self.png_button):
            b.setEnabled(self.result is not None and not busy)
        if not busy and self.status.text().endswith("…"):
            self.status.setText("")

    # -- results ------------------------------------------------------------------------------
    def _show_image(self, result) -> None:
        im = result.images[0]
        upper = [v for v in (im.deepfool_l2, im.cw_l2) if v is not None]
        if im.prediction == -1:
            head = f"The smoothed classifier abstains (p_A ≥ {im.p_lower:.3f} is not above 1/2)."
        else:
            head = (
                f"Smoothed prediction {im.prediction} (base {im.base_prediction}), "
                f"p_A ≥ {im.p_lower:.4f}, certified L2 radius {im.radius:.3f}."
            )
        tail = (
            f" Smallest L2 flip found: DeepFool {_l2(im.deepfool_l2)}, C&W {_l2(im.cw_l2)}"
            f" (base classifier)"
            + (
                f", smooth PGD {_l2(im.smooth_pgd_l2)} (smoothed)"
                if result.smooth_pgd_radii
                else ""
            )
            + "."
        )
        between = ""
        if im.prediction != -1 and im.smooth_pgd_l2:
            between = (
                f" The smoothed classifier's distance to its boundary lies between "
                f"{im.radius:.3f} and {im.smooth_pgd_l2:.3f}."
            )
        elif upper:
            between = f" The base classifier's lies below {min(upper):.3f}."
        self.image_text.setText(head + tail + between)
        self.image_done.emit(result)

    def curve_radii(self, result) -> list[float]:
        top = max(result.largest_radius, *result.smooth_pgd_radii, 0.0) * 1.05
        return [top * k / (CURVE_POINTS - 1) for k in range(CURVE_POINTS)]

    def _show_curves(self, result) -> None:
        from advstudio.core.certify.job import certified_curve

        self.result = result
        self.plot.clear()
        radii = self.curve_radii(result)
        for r, acc in zip(radii, certified_curve(result, radii)):
            self.plot.add(LOWER, r, acc)
        empirical = [(0.0, result.certified_accuracy[0])] if result.radii[0] == 0 else []
        for r, acc in [*empirical, *zip(result.smooth_pgd_radii, result.empirical_accuracy)]:
            self.plot.add(UPPER, r, acc)
        self.plot.redraw_now()
        figures = ", ".join(
            f"{a:.0%} at {r:g}" for r, a in zip(result.radii, result.certified_accuracy)
        )
        self.curve_text.setText(
            f"{len(result.images)} digits, σ {result.sigma:g}, n {result.n}: certified "
            f"{figures}; abstained on {result.abstain_rate:.0%}; base accuracy "
            f"{result.base_accuracy:.0%}. No certificate reaches past "
            f"{result.largest_radius:.2f} at this n and α."
        )
        self._enable()
        self.test_done.emit(result)

    def _show_ibp(self, result) -> None:
        self.ibp_text.setText(
            f"{result.n_images} digits at L∞ ε {result.eps:g}: verified "
            f"{result.verified_accuracy:.1%} ≤ PGD-20 {result.pgd_accuracy:.1%} ≤ clean "
            f"{result.clean_accuracy:.1%}"
        )
        self.ibp_done.emit(result)

    # -- exports ------------------------------------------------------------------------------
    def _ask_export(self, kind: str) -> None:
        # the last export folder, as every other export (a bare name started in the process's
        # working folder)
        start = Path(str(self.settings.value("last_export_folder", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {kind.upper()}", str(start / f"certified.{kind}"), f"*.{kind}"
        )
        if path:
            self.settings.setValue("last_export_folder", str(Path(path).parent))
            self.export(path)

    def export(self, path: str) -> list[str]:
        """``.png``: the plot as shown; ``.csv``: the curves there and one row per digit beside
        it (``-images.csv``). Returns the files written."""
        from pathlib import Path

        from advstudio.core.certify.job import curves_to_csv, smoothing_to_csv

        target = Path(path)
        if target.suffix.lower() == ".png":
            self.plot.redraw_now()
            self.plot.grab().save(str(target))
            return [str(target)]
        images = target.with_name(target.stem + "-images.csv")
        curves_to_csv(self.result, self.curve_radii(self.result), target)
        smoothing_to_csv(self.result, images)
        return [str(target), str(images)]


if __name__ == "__main__":
    from advstudio.ui.preview import run_alone

    run_alone(CertifyTab)
