"""Data poisoning: poisoned data-set views, the attacks that build them, a sanitising defence,
and the job that trains a victim on poisoned digits.

Pixels are in [0, 1]; classes are the digits 0..9.

- ``views``: :class:`PoisonedView`, the poisoned set as a view over the clean tensors;
- ``triggers``: :class:`Trigger`, the backdoor patch and its exact stamp;
- ``attacks``: :func:`label_flip`, :func:`backdoor` (BadNets), :func:`adversarial_poison`
  (FGSM/PGD examples), and how success is measured;
- ``sanitize``: the defence, :func:`sanitize` (loss filter, k-NN label check, activation
  clustering) and its :class:`SanitizeReport`;
- ``job``: :class:`PoisonConfig`, :func:`run_poisoning` and :func:`run_fraction_sweep`.

>>> from advstudio.core.poisoning import backdoor, Trigger
>>> view = backdoor(x, y, 0.05, trigger=Trigger(size=3, row=24, col=24), target=0)
>>> xb, yb = view.batch(torch.arange(64))
"""

from advstudio.core.poisoning.attacks import (
    adversarial_poison,
    adversarial_poison_job,
    attack_success_rate,
    backdoor,
    check_class,
    check_fraction,
    label_flip,
    poison_count,
    predict_labels,
    triggered_set,
)
from advstudio.core.poisoning.job import (
    PoisonConfig,
    PoisonCurve,
    PoisonResult,
    run_fraction_sweep,
    run_poisoning,
)
from advstudio.core.poisoning.sanitize import (
    ClusterVerdict,
    SanitizeConfig,
    SanitizeReport,
    knn_agreement,
    sanitize,
    score_flags,
)
from advstudio.core.poisoning.triggers import Trigger
from advstudio.core.poisoning.views import PoisonedView, clean_view

__all__ = [
    "PoisonedView",
    "clean_view",
    "Trigger",
    "label_flip",
    "backdoor",
    "adversarial_poison",
    "adversarial_poison_job",
    "triggered_set",
    "attack_success_rate",
    "predict_labels",
    "check_fraction",
    "check_class",
    "poison_count",
    "SanitizeConfig",
    "SanitizeReport",
    "ClusterVerdict",
    "sanitize",
    "score_flags",
    "knn_agreement",
    "PoisonConfig",
    "PoisonResult",
    "PoisonCurve",
    "run_poisoning",
    "run_fraction_sweep",
]
