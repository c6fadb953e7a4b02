"""The judge of a GAN's samples: the classifier whose predictions and features give classes
covered, class entropy and the Fréchet distance, chosen to fit the data the GAN learns.

Why a judge must fit the data: classes covered asks "which of the data set's classes does this
sample look like", and the Fréchet distance compares the samples to real images in a network's
features; a digit CNN says nothing about CIFAR-10 samples (every one is read as some digit). So
the judge is, in order (``GanConfig.judge``):

- ``"auto"``: the built-in digit CNN for the bundled digits and MNIST, else none;
- a registry key (``"file:/path/model.pt2"``, ``"digits-cnn"``, ...): that classifier, which
  should have as many outputs as the data set has classes (its card names them); one with
  another number of classes (an ImageNet model for a folder of photos) serves as a feature
  network: the Fréchet distance in its features, no class measures;
- ``"none"``: no judge; the three measures are off (the GAN still trains, and the losses, D's
  outputs, gradient norms and the batch diversity are still shown).

Features for the Fréchet distance are the input of the classifier's last linear layer (the
penultimate features, as FID takes Inception's pool features), read with a forward hook so any
architecture works; a net without a linear layer gives its logits. The real images it compares
with are 1,000 of the data set's test split at the GAN's geometry (the bundled test digits for
the digit CNN on digits, as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from advstudio.core.errors import ConfigError

AUTO, NONE = "auto", "none"
DIGIT_JUDGE = "digits-cnn"
DIGIT_SETS = ("digits", "torchvision:mnist")
REAL_SAMPLES = 1000


def auto_judge(dataset: str) -> tuple[str, str]:
    """``(judge key, why)`` that ``"auto"`` picks for ``dataset``: the digit CNN on digits,
    else ``("", reason)`` (no judge)."""
    if dataset in DIGIT_SETS:
        return DIGIT_JUDGE, "the built-in digit CNN judges digits"
    return "", (
        f"no judge for {dataset}: the digit CNN only reads digits; open a classifier of this "
        "data set's classes (its card naming them) to judge the samples"
    )


def card_fits(dataset: str, dataset_classes: list[str], model_classes: list[str], card) -> bool:
    """Whether a classifier (its class names and card, or None) fits a data set: its card names
    the same known set (``cifar10`` for ``torchvision:cifar10``, ``digits`` for the digits or
    MNIST), or it has the data set's class names, in order."""
    named = getattr(card, "classes", None)
    if isinstance(named, str):
        kind, _, arg = dataset.partition(":")
        same = {"digits": "digits", "mnist": "digits"}.get(arg or kind, arg or kind)
        if named == same:
            return True
    return bool(model_classes) and list(model_classes) == list(dataset_classes)


def _last_linear(net: nn.Module) -> nn.Module | None:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@dataclass
class Judge:
    """A classifier judging samples: ``key`` its registry key (``""`` for an in-memory one),
    ``name`` what the UI says, ``classifier`` the [0, 1] ``Classifier`` (None: no judge, and
    ``why`` says so), ``real`` the real images its Fréchet distance compares with.
    ``features_only``: a feature network of other classes than the data set's (e.g. an
    ImageNet model for a folder of photos): it gives the Fréchet distance, not the class
    measures (``why`` says so)."""

    key: str
    name: str
    classifier: nn.Module | None = None
    why: str = ""
    real: torch.Tensor | None = None
    features_only: bool = False
    _stats: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.classifier is not None

    @property
    def num_classes(self) -> int:
        return int(self.classifier.num_classes) if self.classifier is not None else 0

    @torch.no_grad()
    def features_and_logits(
        self, images01: torch.Tensor, batch_size: int = 500
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The judge's penultimate features (N, D) and logits (N, K) of [0, 1] images, on the
        CPU."""
        clf = self.classifier
        if self.key == DIGIT_JUDGE:  # the digit CNN's own path (its figures in the README)
            from advstudio.core.gan.evaluation import features_and_logits

            return features_and_logits(images01, str(clf.device), batch_size)
        layer = _last_linear(clf.net)
        seen: list[torch.Tensor] = []
        hook = (
            layer.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
            if layer is not None
            else None
        )
        device = next((p.device for p in clf.parameters()), torch.device("cpu"))
        feats, logits = [], []
        try:
            for chunk in images01.split(batch_size):
                seen.clear()
                out = clf(chunk.to(device)).float()
                logits.append(out.cpu())
                feats.append((seen[-1] if seen else out).flatten(1).float().cpu())
        finally:
            if hook is not None:
                hook.remove()
        return torch.cat(feats), torch.cat(logits)

    def real_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the judge's features of the real images (computed once)."""
        from advstudio.core.gan.metrics import gaussian_stats

        if self._stats is None:
            if self.real is None:
                from advstudio.core.gan.evaluation import real_digit_stats

                self._stats = real_digit_stats()
            else:
                self._stats = gaussian_stats(self.features_and_logits(self.real)[0])
        return self._stats


def make_judge(
    choice: str,
    dataset: str,
    dataset_classes: list[str],
    device: str = "cpu",
    real: torch.Tensor | None = None,
    classifier: nn.Module | None = None,
    card=None,
) -> Judge:
    """The judge of ``choice`` (``"auto"``, ``"none"`` or a registry key) for ``dataset`` with
    ``dataset_classes``; ``real``: real images at the GAN's geometry in [0, 1] for the Fréchet
    distance (None: the bundled test digits, only for the digit CNN on digits);
    ``classifier``: the already-loaded model of key ``choice`` (the window passes the one it
    has open), else it is loaded from the registry (with ``card`` for a ``file:`` model
    without one beside it).

    Raises :class:`ConfigError` when the classifier's outputs do not match the classes."""
    if choice == NONE:
        return Judge("", "none", why="the judge is switched off (judge = 'none')")
    if classifier is not None:  # the window's open model, chosen for this data set
        key = "" if choice == AUTO else choice
    else:
        key = choice
        if choice == AUTO:
            key, why = auto_judge(dataset)
            if not key:
                return Judge("", "none", why=why)
        from advstudio.core.models.registry import load_model

        classifier = load_model(key, device, card=card)
    classifier.eval()
    name = getattr(classifier, "name", key) or key
    outputs = int(classifier.num_classes)
    features_only, why = False, ""
    if dataset_classes and outputs != len(dataset_classes):
        if choice == AUTO:  # only a judge the user picked may be a mere feature network
            raise ConfigError(
                f"judge {name} has {outputs} classes but {dataset} has "
                f"{len(dataset_classes)}; choose a classifier of this data set's classes"
            )
        features_only = True
        why = (
            f"{name} has {outputs} classes and {dataset} {len(dataset_classes)}: it judges "
            "as a feature network (Fréchet distance only; no classes covered or class entropy)"
        )
    if key == DIGIT_JUDGE and dataset == "digits":
        real = None  # the bundled test digits, at their own 28×28
    elif real is None:
        raise ConfigError(f"judge {name} needs real images of {dataset} to compare with")
    return Judge(key, name, classifier, why=why, real=real, features_only=features_only)


def dataset_classes(dataset: str) -> list[str]:
    """The class names of ``dataset`` without loading it (nothing downloaded, no image
    decoded): the digits', a known torchvision set's, a folder's from its listing; ``[]`` when
    not known this way."""
    from advstudio.core.data.sets import folder_classes
    from advstudio.core.models.card import KNOWN_CLASSES, class_names

    kind, _, arg = dataset.partition(":")
    if kind == "digits" or arg == "mnist":
        return class_names("digits")
    if kind == "torchvision":
        return class_names(arg) if arg in KNOWN_CLASSES and arg != "cifar100" else []
    return folder_classes(dataset)


def window_judge(dataset: str, model_key: str, model) -> tuple[str, str]:
    """What the window judges a GAN on ``dataset`` with, given the open model: ``(judge
    choice for the config, a line for the UI)``. The digit CNN for digits; else the open model
    when its card names the data set's classes (choice = its registry key); else ``"none"``
    with why."""
    if dataset in DIGIT_SETS:
        return AUTO, "Judge: the built-in digit CNN (classes covered, Fréchet distance)."
    names = list(getattr(model, "class_names", []) or [])
    card = getattr(model, "card", None)
    if (
        model is not None
        and model_key
        and card_fits(dataset, dataset_classes(dataset), names, card)
    ):
        name = getattr(model, "name", "") or model_key
        return model_key, f"Judge: your model {name} (its card names this data set's classes)."
    opened = (
        f"the open model ({getattr(model, 'name', '') or model_key}) is not a classifier of "
        "this data set's classes"
        if model is not None
        else "no classifier of this data set's classes is open"
    )
    why = (
        f"No judge: the digit CNN only reads digits, and {opened}. Classes covered and the "
        "Fréchet distance are off."
    )
    return NONE, why
