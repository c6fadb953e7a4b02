"""Distance to the decision boundary: the smallest perturbation FGSM (smallest flipping eps),
DeepFool and C&W L2 each need to change the prediction. On the current image: a table (L2,
L-inf, success, class after) and the three perturbations as thumbnails. On images of a data set
(any shape and class count, :mod:`advstudio.core.attacks.boundary`, recorded as a run): the
median norms over the images each method flipped, and the first image's perturbations. Runs
on a worker.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSettings, QSize, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from advstudio.core.errors import ConfigError
from advstudio.ui.attack.source import ImageSource
from advstudio.ui.widgets.image_view import ImageView
from advstudio.ui.widgets.job_owner import JobOwner
from advstudio.ui.widgets.perturbation import perturbation_rgb
from advstudio.ui.widgets.results_table import ResultsTable
from advstudio.workers import JobManager, JobWorker

HEADERS = ["Method", "L2 needed", "L∞ needed", "Success", "Predicted after"]
DATASET_HEADERS = ["Method", "Median L2", "Median L∞", "Flipped", "Mean L2"]
THUMB = QSize(84, 84)
THUMB_TITLES = {"fgsm": "FGSM", "deepfool": "DeepFool", "cw": "C&W"}


def _number(value: float, digits: int = 3) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


class BoundaryPanel(QWidget):
    """``lab`` is the Attack tab: its image, model, true class. ``measured(list[BoundaryRow])``
    after each run on the current image, ``measured_set(BoundaryResult)`` after each run on a
    data set."""

    measured = Signal(object)
    measured_set = Signal(object)

    def __init__(
        self, lab, jobs: JobManager, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.lab, self.jobs, self.settings = lab, jobs, settings
        self.rows = self.result = None
        self.source = ImageSource(settings, "boundary")
        self.cw_steps = QSpinBox(
            minimum=10,
            maximum=5000,
            singleStep=50,
            value=int(settings.value("boundary/cw_steps", 100)),
        )
        self.cw_steps.setToolTip(
            "C&W: Adam steps per round of the search on c (10-5000); the "
            "cost is steps × rounds forward and backward passes"
        )
        self.cw_rounds = QSpinBox(
            minimum=1, maximum=20, value=int(settings.value("boundary/cw_rounds", 5))
        )
        self.cw_rounds.setToolTip("C&W: rounds of binary search on the weight c (1-20)")
        self.run_button = QPushButton("Measure distance")
        self.run_button.setToolTip(
            "Run FGSM's smallest-ε search, DeepFool and C&W L2 on the current image or the "
            "data set's images (Ctrl+D)"
        )
        self.run_button.clicked.connect(self.run)
        QShortcut(QKeySequence("Ctrl+D"), self, activated=self.run)
        self.status = QLabel(
            "How far is the nearest decision boundary? Press Measure distance.", wordWrap=True
        )
        self.job = JobOwner(self, jobs, self.status)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("C&W steps"))
        controls.addWidget(self.cw_steps)
        controls.addWidget(QLabel("rounds"))
        controls.addWidget(self.cw_rounds)
        controls.addWidget(self.run_button)
        controls.addStretch(1)

        self.table = ResultsTable(HEADERS)
        self.table.setToolTip(
            "Norms over all pixel values, pixels in [0, 1]; L∞ also in grey levels of 255"
        )
        self.thumbs = {}
        thumbs = QHBoxLayout()
        for key, title in THUMB_TITLES.items():
            view = ImageView(title, "")
            view.picture.setMinimumSize(THUMB)
            self.thumbs[key] = view
            thumbs.addWidget(view)
        body = QHBoxLayout()
        body.addWidget(self.table, 3)
        body.addLayout(thumbs, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source)
        layout.addLayout(controls)
        layout.addLayout(body, 1)
        layout.addWidget(self.status)

    def clear(self) -> None:
        self.rows = self.result = None
        self.table.set_rows([])
        for view in self.thumbs.values():
            view.set_pixels(None)

    def run(self) -> JobWorker | None:
        if self.job.busy:
            return None
        if self.source.on_dataset():
            return self.run_dataset()
        model, image = self.lab.state.model, self.lab.state.image
        if model is None or image is None:
            self.status.setText("Load an image and a model on the Image tab first.")
            return None
        from advstudio.core.attacks.lab import distance_to_boundary
        from advstudio.core.images import to_tensor

        x = to_tensor(image)
        label = self.lab.true_label()
        steps, rounds = self.cw_steps.value(), self.cw_rounds.value()
        self.settings.setValue("boundary/cw_steps", steps)
        self.settings.setValue("boundary/cw_rounds", rounds)

        def connect(w: JobWorker) -> None:
            w.progress.connect(lambda p: self.status.setText(f"measuring: {p.message}…"))
            w.returned.connect(lambda rows: self._show(model, x, rows))
            w.finished.connect(lambda: self.run_button.setEnabled(True))

        self.run_button.setEnabled(False)
        self.status.setText("measuring…")
        return self.job.start(
            lambda: distance_to_boundary(model, x, label, cw_steps=steps, cw_search_steps=rounds),
            "Distance to the boundary",
            "Measuring the distance failed",
            connect=connect,
        )

    def config(self):
        from advstudio.core.attacks.boundary import BoundaryConfig

        state = self.lab.state
        if state.model is None:
            raise ConfigError("pick a model first")
        data = self.source.data
        return BoundaryConfig(
            model=state.model_key,
            card=state.model_card,
            n_images=self.source.n_images.value(),
            cw_steps=self.cw_steps.value(),
            cw_search_steps=self.cw_rounds.value(),
            device=state.device,
            dataset=data.dataset(),
            split=data.split(),
            fit=data.fit(),
        )

    def run_dataset(self) -> JobWorker | None:
        """The three methods on ``n`` images of the chosen data set, as a recorded job."""
        from advstudio.core.attacks.boundary import run_boundary

        try:
            config = self.config()
        except ConfigError as exc:
            self.status.setText(str(exc))
            return None
        self.settings.setValue("boundary/cw_steps", config.cw_steps)
        self.settings.setValue("boundary/cw_rounds", config.cw_search_steps)
        names = self.lab.state.model.class_names

        def connect(w: JobWorker) -> None:
            w.progress.connect(lambda p: self.status.setText(f"measuring: {p.message}…"))
            w.returned.connect(lambda result: self._show_set(result, names))
            w.finished.connect(lambda: self.run_button.setEnabled(True))

        self.run_button.setEnabled(False)
        self.status.setText(f"measuring {config.n_images} images…")
        return self.job.start(
            lambda: run_boundary(config),
            f"Distance to the boundary of {config.model}",
            "Measuring the distance failed",
            connect=connect,
            record=("boundary", config),
        )

    def _show_set(self, result, names) -> None:
        from advstudio.core.attacks.boundary import METHOD_NAMES
        from advstudio.core.images import from_tensor

        self.result = result
        self.table.setHorizontalHeaderLabels(DATASET_HEADERS)
        right = sum(result.correct)
        cells = []
        for method, m in result.methods.items():
            linf = m.median("linf")
            flipped = sum(m.success)
            l2s = [v for v in m.l2 if not math.isnan(v)]
            cells.append(
                [
                    METHOD_NAMES[method],
                    _number(m.median("l2")),
                    _number(linf, 4) + ("" if math.isnan(linf) else f" ({linf * 255:.1f}/255)"),
                    f"{flipped} of {right}",
                    _number(sum(l2s) / len(l2s) if l2s else math.nan),
                ]
            )
        self.table.set_rows(cells)
        for method, view in self.thumbs.items():
            m = result.methods.get(method)
            if m is None or not m.success[0]:
                view.set_pixels(None, f"{THUMB_TITLES[method]}: first image not flipped")
                continue
            rgb, amp = perturbation_rgb(from_tensor(m.x_adv - result.x))
            view.set_pixels(
                rgb, f"{THUMB_TITLES[method]}, first image: L2 {m.l2[0]:.2f} ×{amp:.1f}"
            )
        n = result.n_images
        best = min(
            (m for m in result.methods.values() if not math.isnan(m.median())),
            key=lambda m: m.median(),
            default=None,
        )
        text = f"{n} images, {right} classified right"
        if best is not None:
            text += f"; smallest median L2 {best.median():.3f} by {METHOD_NAMES[best.method]}"
        fgsm = result.methods.get("fgsm")
        if fgsm is not None and not math.isnan(fgsm.median("linf")):
            text += f"; median smallest FGSM ε {fgsm.median('linf'):.4f}"
        self.status.setText(text + ".")
        self.measured_set.emit(result)

    def _show(self, model, x, rows) -> None:
        from advstudio.core.attacks.lab import BOUNDARY_NAMES
        from advstudio.core.images import from_tensor

        self.rows = rows
        self.table.setHorizontalHeaderLabels(HEADERS)
        names = model.class_names
        cells = []
        for r in rows:
            linf = _number(r.linf, 4)
            if not math.isnan(r.linf):
                linf += f" ({r.linf * 255:.1f}/255)"
            cells.append(
                [
                    BOUNDARY_NAMES[r.method],
                    _number(r.l2),
                    linf,
                    "yes" if r.success else "no",
                    names[r.pred_after],
                ]
            )
        self.table.set_rows(cells)
        for r in rows:
            rgb, amp = perturbation_rgb(from_tensor(r.x_adv - x))
            title = BOUNDARY_NAMES[r.method].split(" (")[0]
            self.thumbs[r.method].set_pixels(rgb, f"{title}: L2 {_number(r.l2, 2)} ×{amp:.1f}")
        flipped = [r for r in rows if r.success and not math.isnan(r.l2)]
        if flipped:
            best = min(flipped, key=lambda r: r.l2)
            self.status.setText(
                f"Nearest boundary found by {BOUNDARY_NAMES[best.method]}: L2 "
                f"{best.l2:.3f}, towards class {names[best.pred_after]}."
            )
        else:
            self.status.setText("No method changed the prediction.")
        self.measured.emit(rows)
