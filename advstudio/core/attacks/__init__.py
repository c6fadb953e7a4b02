"""Adversarial attacks on classifiers over [0, 1] images, and how to measure them.

Pixels and every eps / alpha / step are in [0, 1]. White-box attacks take a model (a
:class:`~advstudio.core.models.classifier.Classifier` or any module returning logits);
black-box attacks take a ``predict`` callable and never differentiate it.

>>> from advstudio.core.attacks import fgsm, attack_report
>>> rows = attack_report(cnn, x, fgsm(cnn, x, y, eps=0.1), y)
"""

from advstudio.core.attacks.autopgd import APGD_LOSSES, apgd, dlr_loss, targeted_dlr_loss
from advstudio.core.attacks.blackbox import (
    Oracle,
    Predict,
    QueryResult,
    TransferResult,
    as_predict,
    margin,
    nes,
    simba,
    spsa,
    transfer,
)
from advstudio.core.attacks.catalogue import (
    Access,
    AttackEntry,
    AttackRun,
    Param,
    Use,
    attacks_for,
    register,
    registered,
)
from advstudio.core.attacks.metrics import (
    ImageReport,
    attack_report,
    l0,
    l2,
    linf,
    minimal_epsilon,
    minimal_epsilons,
    psnr,
    ssim,
)
from advstudio.core.attacks.minimal import (
    MINIMAL_METHODS,
    MinimalNorms,
    cw_l2,
    deepfool,
    minimal_norms,
)
from advstudio.core.attacks.quantise import (
    QuantisedResult,
    SurvivalReport,
    jpeg_roundtrip,
    quantisation_aware,
    quantise_8bit,
    quantise_adversarial,
    survival,
)
from advstudio.core.attacks.robust import (
    DEFAULT_ATTACKS,
    ROBUST_ATTACKS,
    Budget,
    RobustConfig,
    RobustResult,
    robust_accuracy,
    run_robust,
)
from advstudio.core.attacks.sweep import (
    SweepConfig,
    SweepCurve,
    SweepResult,
    run_sweep,
    sweep_to_csv,
)
from advstudio.core.attacks.transforms import (
    TRANSFORMS,
    BitDepth,
    Defended,
    FeatureSqueezingDetector,
    JpegCompression,
    MedianSmoothing,
    defended,
)
from advstudio.core.attacks.whitebox import (
    apply_direction,
    ascent_gradient,
    bim,
    eval_mode,
    fgsm,
    fgsm_direction,
    gradient_and_logits,
    mifgsm,
    pgd,
    project,
)

__all__ = [
    # the catalogue: every attack, its access, norm, parameters and cost
    "Access",
    "AttackEntry",
    "AttackRun",
    "Param",
    "Use",
    "attacks_for",
    "register",
    "registered",
    # white-box, L-inf
    "fgsm",
    "fgsm_direction",
    "apply_direction",
    "bim",
    "pgd",
    "mifgsm",
    "eval_mode",
    "ascent_gradient",
    "gradient_and_logits",
    "project",
    # black-box
    "Predict",
    "as_predict",
    "Oracle",
    "margin",
    "transfer",
    "TransferResult",
    "nes",
    "spsa",
    "simba",
    "QueryResult",
    # measures
    "linf",
    "l2",
    "l0",
    "psnr",
    "ssim",
    "attack_report",
    "ImageReport",
    "minimal_epsilon",
    "minimal_epsilons",
    # sweep job
    "SweepConfig",
    "SweepCurve",
    "SweepResult",
    "run_sweep",
    "sweep_to_csv",
    # minimal perturbations (L2)
    "deepfool",
    "cw_l2",
    "minimal_norms",
    "MinimalNorms",
    "MINIMAL_METHODS",
    # APGD and the robust-accuracy job
    "apgd",
    "dlr_loss",
    "targeted_dlr_loss",
    "APGD_LOSSES",
    "robust_accuracy",
    "run_robust",
    "RobustConfig",
    "RobustResult",
    "Budget",
    "ROBUST_ATTACKS",
    "DEFAULT_ATTACKS",
    # input-transform defences, BPDA and the feature-squeezing detector
    "JpegCompression",
    "BitDepth",
    "MedianSmoothing",
    "TRANSFORMS",
    "Defended",
    "defended",
    "FeatureSqueezingDetector",
    # does it survive saving?
    "quantise_8bit",
    "jpeg_roundtrip",
    "survival",
    "SurvivalReport",
    "quantise_adversarial",
    "QuantisedResult",
    "quantisation_aware",
]
