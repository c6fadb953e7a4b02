"""Universal adversarial perturbation (Moosavi-Dezfooli et al. 2017) of the current digit model:
fitted on 200 bundled test digits at the Attack tab's ε (untargeted or towards a class), its
fooling rate on 200 held-out digits, the perturbation shown amplified (grey = 0, white = +ε,
black = -ε) and applied to the current image with the model's new prediction."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker

FIT, HELD_OUT = 200, 200  # bundled test digits to fit on, and to judge on


class UniversalPanel(QWidget):
    """``lab`` is the Attack tab. ``fitted(UniversalResult)`` when a fit completes."""

    fitted = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.result = lab, None
        self.target = QComboBox()
        self.target.addItem("untargeted", -1)
        for k in range(10):
            self.target.addItem(f"towards {k}", k)
        self.target.setToolTip(
            "Untargeted: change as many predictions as possible; towards k: "
            "send as many digits as possible to class k"
        )
        self.run_button = QPushButton("Fit universal perturbation")
        self.run_button.setToolTip(
            f"Algorithm 1 on {FIT} test digits at the controls' ε "
            f"(at most 5 passes), judged on {HELD_OUT} others"
        )
        self.run_button.clicked.connect(lambda: self.run())
        self.perturbation = ImageView("Perturbation (amplified)")
        self.applied = ImageView("Current image + perturbation")
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)
        row = QHBoxLayout()
        row.addWidget(self.target)
        row.addWidget(self.run_button)
        row.addStretch(1)
        views = QHBoxLayout()
        views.addWidget(self.perturbation)
        views.addWidget(self.applied)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(views, 1)
        layout.addWidget(self.status)
        lab.state.image_changed.connect(lambda *_: self.show_applied())

    def run(self) -> JobWorker | None:
        model = self.lab.state.model
        if model is None or model.input_shape[0] != 1 or model.num_classes != 10:
            self.status.setText(
                "The universal perturbation is fitted on the bundled digits: pick a digit model."
            )
            return None
        from advstudio.core.attacks.universal import universal_job

        eps, target = self.lab.eps, self.target.currentData()

        def job():
            from advstudio.core.attacks.sweep import sweep_images

            x, _ = sweep_images(FIT + HELD_OUT, 1)
            x = x.to(model.device)
            return (
                yield from universal_job(
                    model, x[:FIT], x[FIT:], eps, target=None if target < 0 else target
                )
            )

        self.status.setText(f"fitting at ε {eps:g}…")
        return self.job.start(
            job,
            "Universal perturbation",
            "The fit failed",
            connect=lambda w: w.returned.connect(self._show),
        )

    def _show(self, result) -> None:
        from advstudio.core.images import from_tensor

        self.result = result
        scale = 0.5 / result.eps if result.eps > 0 else 0.0
        self.perturbation.set_pixels(
            from_tensor((0.5 + scale * result.v).clamp(0, 1)),
            f"Perturbation, ε {result.eps:g} (amplified)",
        )
        aim = "fooled" if result.target is None else f"sent to {result.target}"
        self.status.setText(
            f"ε {result.eps:g}: {result.held_out_rate:.1%} of {HELD_OUT} "
            f"held-out digits {aim} ({result.fit_rate:.1%} of the fitting "
            "ones)."
        )
        self.show_applied()
        self.fitted.emit(result)

    def show_applied(self) -> None:
        """The perturbation on the current image, with the model's prediction."""
        model, image = self.lab.state.model, self.lab.state.image
        if self.result is None or model is None or image is None:
            self.applied.set_pixels(None)
            return
        from advstudio.core.attacks.universal import apply
        from advstudio.core.images import from_tensor, to_tensor

        x = apply(to_tensor(image).to(model.device), self.result.v.to(model.device))
        if x.shape[1:] != self.result.v.shape:
            return
        top = model.predict(x, k=1)[0]
        self.applied.set_pixels(
            from_tensor(x),
            f"Current image + perturbation: "
            f"{model.class_names[top.indices[0]]} "
            f"({top.probs[0] * 100:.1f} %)",
        )
