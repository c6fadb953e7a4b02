"""The glossary: one line and one paper for every term the window uses, and ``tip`` to show
them as tooltips.

Why one table: the same term (PGD, ε, VAT) appears in several tabs, the Guide and the docs; a
definition written once cannot drift between them, and a test checks every entry has both a
definition and a reference. Tabs call ``tip(widget, "pgd")`` (one line per widget) and
``tip_items(combo)`` (an item per catalogue key) instead of writing their own prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QWidget


@dataclass(frozen=True)
class Term:
    name: str
    definition: str
    reference: str


GLOSSARY: dict[str, Term] = {
    key: term
    for key, term in (
        (
            "eps-linf",
            Term(
                "ε (L∞)",
                "The largest change allowed to any one pixel, in [0, 1] pixel "
                "units (0.1 = 25.5 grey levels).",
                "Goodfellow, Shlens, Szegedy 2015, arXiv:1412.6572",
            ),
        ),
        (
            "eps-l2",
            Term(
                "ε (L2)",
                "The largest Euclidean length of the whole perturbation, over all pixels together.",
                "Carlini, Wagner 2017, arXiv:1608.04644",
            ),
        ),
        (
            "white-box",
            Term(
                "White-box",
                "The attacker knows the model and uses its gradients.",
                "Szegedy et al. 2014, arXiv:1312.6199",
            ),
        ),
        (
            "transfer",
            Term(
                "Transfer (black-box)",
                "The attacker crafts the example on a surrogate "
                "model of its own and hopes it fools the target too.",
                "Papernot et al. 2017, arXiv:1602.02697",
            ),
        ),
        (
            "query",
            Term(
                "Scores only (black-box)",
                "The attacker sees only the model's output "
                "scores and estimates gradients from queries.",
                "Chen et al. 2017 (ZOO), arXiv:1708.03999",
            ),
        ),
        (
            "labels",
            Term(
                "Labels only (black-box)",
                "The attacker sees only the predicted class, "
                "the most realistic black box (decision-based attacks).",
                "Brendel et al. 2018, arXiv:1712.04248",
            ),
        ),
        (
            "fgsm",
            Term(
                "FGSM",
                "One step of size ε along the sign of the loss gradient.",
                "Goodfellow, Shlens, Szegedy 2015, arXiv:1412.6572",
            ),
        ),
        (
            "bim",
            Term(
                "BIM",
                "FGSM repeated in small steps, clipped to the ε-ball after each.",
                "Kurakin, Goodfellow, Bengio 2017, arXiv:1607.02533",
            ),
        ),
        (
            "pgd",
            Term(
                "PGD",
                "BIM from a random start in the ε-ball: the standard first-order attack.",
                "Madry et al. 2018, arXiv:1706.06083",
            ),
        ),
        (
            "mifgsm",
            Term(
                "MI-FGSM",
                "BIM with a momentum of gradients, which transfers better.",
                "Dong et al. 2018, arXiv:1710.06081",
            ),
        ),
        (
            "apgd",
            Term(
                "APGD",
                "PGD with an adaptive step size and restarts from the best point; "
                "part of AutoAttack.",
                "Croce, Hein 2020, arXiv:2003.01690",
            ),
        ),
        (
            "pgd-l2",
            Term(
                "PGD (L2)",
                "PGD whose steps follow the normalised gradient and are projected onto an L2 ball.",
                "Madry et al. 2018, arXiv:1706.06083",
            ),
        ),
        (
            "apgd-l2",
            Term(
                "APGD (L2)",
                "APGD in the L2 threat model (RobustBench's second track).",
                "Croce, Hein 2020, arXiv:2003.01690",
            ),
        ),
        (
            "square",
            Term(
                "Square",
                "A score-only random search that changes one square window at a "
                "time; AutoAttack's black-box member.",
                "Andriushchenko et al. 2020, arXiv:1912.00049",
            ),
        ),
        (
            "square-l2",
            Term(
                "Square (L2)",
                "The Square attack in the L2 threat model.",
                "Andriushchenko et al. 2020, arXiv:1912.00049",
            ),
        ),
        (
            "fab-t",
            Term(
                "FAB-T",
                "A targeted minimal-perturbation attack that projects onto the "
                "linearised boundary; AutoAttack's third member.",
                "Croce, Hein 2020, arXiv:1907.02044",
            ),
        ),
        (
            "fab-t-l2",
            Term(
                "FAB-T (L2)",
                "FAB-T measuring the perturbation in L2.",
                "Croce, Hein 2020, arXiv:1907.02044",
            ),
        ),
        (
            "hsj",
            Term(
                "HopSkipJump",
                "A label-only attack: it walks along the decision boundary "
                "using only the predicted class.",
                "Chen, Jordan, Wainwright 2020, arXiv:1904.02144",
            ),
        ),
        (
            "dlr",
            Term(
                "DLR",
                "Difference of Logits Ratio: a loss invariant to the logits' scale, "
                "so masked gradients do not fool it.",
                "Croce, Hein 2020, arXiv:2003.01690",
            ),
        ),
        (
            "deepfool",
            Term(
                "DeepFool",
                "Steps to the nearest linearised decision boundary: a small L2 perturbation.",
                "Moosavi-Dezfooli et al. 2016, arXiv:1511.04599",
            ),
        ),
        (
            "cw",
            Term(
                "C&W",
                "Optimises distance plus a margin loss weighted by c, searched per image.",
                "Carlini, Wagner 2017, arXiv:1608.04644",
            ),
        ),
        (
            "nes",
            Term(
                "NES",
                "Estimates the gradient from queries with Gaussian samples "
                "(natural evolution strategies).",
                "Ilyas et al. 2018, arXiv:1804.08598",
            ),
        ),
        (
            "spsa",
            Term(
                "SPSA",
                "Estimates the gradient from pairs of queries along random ±1 directions.",
                "Uesato et al. 2018, arXiv:1802.05666",
            ),
        ),
        (
            "simba",
            Term(
                "SimBA",
                "Tries one basis direction at a time and keeps it when the true "
                "class's score drops.",
                "Guo et al. 2019, arXiv:1905.07121",
            ),
        ),
        (
            "bpda",
            Term(
                "BPDA",
                "Backward Pass Differentiable Approximation: attacks through a "
                "non-differentiable defence by using the identity in the backward pass.",
                "Athalye, Carlini, Wagner 2018, arXiv:1802.00420",
            ),
        ),
        (
            "feature-squeezing",
            Term(
                "Feature squeezing",
                "Detects adversarial inputs when the "
                "prediction changes after reducing bit depth or smoothing.",
                "Xu, Evans, Qi 2018, arXiv:1704.01155",
            ),
        ),
        (
            "frechet",
            Term(
                "Fréchet distance",
                "Distance between Gaussians fitted to features of "
                "real and generated images (lower is better; FID).",
                "Heusel et al. 2017, arXiv:1706.08500",
            ),
        ),
        (
            "classes-covered",
            Term(
                "Classes covered",
                "How many classes a classifier finds among "
                "generated samples: a direct mode-collapse check.",
                "Metz et al. 2017, arXiv:1611.02163",
            ),
        ),
        (
            "vat",
            Term(
                "VAT",
                "Virtual adversarial training: smooths the prediction around every "
                "input, labelled or not, so few labels suffice.",
                "Miyato et al. 2018, arXiv:1704.03976",
            ),
        ),
        (
            "adversarial-training",
            Term(
                "Adversarial training (proactive)",
                "Trains on adversarial examples so the model resists them before any attack.",
                "Madry et al. 2018, arXiv:1706.06083",
            ),
        ),
        (
            "detection",
            Term(
                "Detection (reactive)",
                "Leaves the model alone and flags suspicious inputs when they arrive.",
                "Metzen et al. 2017, arXiv:1702.04267",
            ),
        ),
        (
            "poisoning",
            Term(
                "Poisoning",
                "Corrupts the training data so the trained model misbehaves.",
                "Biggio, Nelson, Laskov 2012, arXiv:1206.6389",
            ),
        ),
        (
            "backdoor",
            Term(
                "Backdoor",
                "Poisoned examples carry a trigger pattern: the model "
                "obeys the trigger and is normal otherwise.",
                "Gu, Dolan-Gavitt, Garg 2017 (BadNets), arXiv:1708.06733",
            ),
        ),
        (
            "label-flip",
            Term(
                "Label flip",
                "Poisoning by changing the labels of some training examples.",
                "Xiao, Xiao, Eckert 2012, ECAI",
            ),
        ),
        (
            "gan",
            Term(
                "GAN",
                "A generator and a discriminator trained against each other until "
                "generated samples look real.",
                "Goodfellow et al. 2014, arXiv:1406.2661",
            ),
        ),
        (
            "dcgan",
            Term(
                "DCGAN",
                "A GAN of strided convolutions with batch norm: the stable recipe for images.",
                "Radford, Metz, Chintala 2016, arXiv:1511.06434",
            ),
        ),
        (
            "mode-collapse",
            Term(
                "Mode collapse",
                "The generator produces only a few kinds of "
                "sample (a few digits) however the noise varies.",
                "Salimans et al. 2016, arXiv:1606.03498",
            ),
        ),
        (
            "smoothing",
            Term(
                "Randomised smoothing",
                "Classifies by majority vote under Gaussian noise, which certifies an L2 radius.",
                "Cohen, Rosenfeld, Kolter 2019, arXiv:1902.02918",
            ),
        ),
        (
            "ibp",
            Term(
                "IBP",
                "Interval bound propagation: pushes the ε-box through the network to "
                "certify, and trains on those bounds.",
                "Gowal et al. 2018, arXiv:1810.12715",
            ),
        ),
        (
            "trades",
            Term(
                "TRADES",
                "Trades clean accuracy for robustness with a KL term between "
                "clean and adversarial predictions.",
                "Zhang et al. 2019, arXiv:1901.08573",
            ),
        ),
    )
}


def tooltip_text(*keys: str) -> str:
    """Rich text for these glossary terms, one paragraph each (a KeyError names a typo)."""
    return "".join(
        f"<p><b>{GLOSSARY[k].name}</b>: {GLOSSARY[k].definition} "
        f"<i>({GLOSSARY[k].reference})</i></p>"
        for k in keys
    )


def tip(widget: QWidget, *keys: str) -> QWidget:
    """Append the glossary entries to ``widget``'s tooltip (what it does stays first)."""
    own = widget.toolTip()
    widget.setToolTip((f"<p>{own}</p>" if own else "") + tooltip_text(*keys))
    return widget


def tip_items(combo: QComboBox) -> QComboBox:
    """Give every item whose data is a glossary key that term's tooltip (the attack list);
    call again after refilling the combo."""
    for i in range(combo.count()):
        key = combo.itemData(i)
        if isinstance(key, str) and key in GLOSSARY:
            combo.setItemData(i, tooltip_text(key), Qt.ItemDataRole.ToolTipRole)
    return combo
