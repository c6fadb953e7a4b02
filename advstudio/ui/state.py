"""What the tabs share: the current image, model and device. Views subscribe to its signals."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal


class AppState(QObject):
    image_changed = Signal(object)  # LoadedImage
    model_changed = Signal(object)  # Classifier
    device_changed = Signal(str)  # e.g. "cpu", "cuda"
    torch_ready = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.image: Any = None
        self.model: Any = None
        self.model_key = ""
        self.device = "cpu"
        self.torch_loaded = False

    def set_image(self, image: Any) -> None:
        self.image = image
        self.image_changed.emit(image)

    def set_model(self, key: str, model: Any) -> None:
        self.model_key, self.model = key, model
        self.model_changed.emit(model)

    @property
    def model_card(self) -> Any:
        """The card a job config should carry for the current model: a user file's (so the
        run records it, and a card given in the dialog for this session only still reaches
        the job), None for the built-ins, the zoo and in-memory models (they have their own)."""
        if self.model_key.startswith("file:"):
            return getattr(self.model, "card", None)
        return None

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            self.device_changed.emit(device)
