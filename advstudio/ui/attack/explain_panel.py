"""Explanations of the Attack tab's latest outcome: saliency, integrated gradients or Grad-CAM
(captum; :mod:`~advstudio.core.attacks.explain`) for the clean and the adversarial image, for
the true class and for the class the attack produced, in a 2 x 2 grid (each map scaled to its
own maximum: white = most attribution)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.workers import JobManager, JobWorker

METHOD_TEXT = {
    "saliency": "Saliency |∂z/∂x|",
    "integrated_gradients": "Integrated gradients",
    "gradcam": "Grad-CAM (last convolution)",
}


class ExplainPanel(QWidget):
    """``lab`` is the Attack tab. ``explained(Explanation)`` when the maps are ready."""

    explained = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.explanation = lab, None
        self.method = QComboBox()
        for key, text in METHOD_TEXT.items():
            self.method.addItem(text, key)
        self.method.setToolTip(
            "Saliency: the gradient's size; integrated gradients: sums to "
            "the logit's change from a black image; Grad-CAM: where the last "
            "convolution looks"
        )
        self.run_button = QPushButton("Explain")
        self.run_button.setToolTip("Maps of the latest attack's clean and adversarial image")
        self.run_button.clicked.connect(lambda: self.run())
        self.views: dict[tuple[str, str], ImageView] = {}
        grid = QGridLayout()
        for r, image in enumerate(("clean", "adversarial")):
            for c, role in enumerate(("true", "new")):
                self.views[image, role] = view = ImageView(f"{image}, {role} class")
                grid.addWidget(view, r, c)
        self.status = QLabel("", wordWrap=True)
        self.job = JobOwner(self, jobs, self.status)
        row = QHBoxLayout()
        row.addWidget(self.method)
        row.addWidget(self.run_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(grid, 1)
        layout.addWidget(self.status)

    def run(self) -> JobWorker | None:
        model, outcome = self.lab.state.model, self.lab.outcome
        if model is None or outcome is None:
            self.status.setText("Run an attack first: the maps explain its outcome.")
            return None
        from advstudio.core.attacks.explain import explain_pair

        method = self.method.currentData()
        x, x_adv = outcome.x.to(model.device), outcome.x_adv.to(model.device)

        def job():
            from advstudio.core.jobs import Progress

            yield Progress(0, 1, f"{METHOD_TEXT[method]}: 4 maps")
            return explain_pair(model, x, x_adv, outcome.label, (method,))

        return self.job.start(
            job,
            "Explanations",
            "The explanation failed",
            connect=lambda w: w.returned.connect(lambda e: self._show(e, method)),
        )

    def _show(self, explanation, method: str) -> None:
        from advstudio.core.images import from_tensor

        self.explanation = explanation
        names = self.lab.state.model.class_names
        classes = {"true": explanation.true_class, "new": explanation.new_class}
        for (image, role), view in self.views.items():
            m = explanation.maps.get((image, role, method))
            if m is None:
                view.set_pixels(None, f"{image}: no {METHOD_TEXT[method]} for this model")
                continue
            heat = m.abs().sum(0, keepdim=True)
            heat = heat / heat.max().clamp_min(1e-12)
            view.set_pixels(from_tensor(heat.cpu()), f"{image}, class {names[classes[role]]}")
        self.status.setText(
            f"{METHOD_TEXT[method]}: true class {names[explanation.true_class]}"
            f", after the attack {names[explanation.new_class]}."
        )
        self.explained.emit(explanation)
