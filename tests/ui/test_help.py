"""The glossary and its tooltips on the Attack and Defence tabs."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt

from advstudio.ui.help import GLOSSARY, tip, tooltip_text

REQUIRED = (
    "eps-linf",
    "eps-l2",
    "white-box",
    "transfer",
    "query",
    "fgsm",
    "bim",
    "pgd",
    "mifgsm",
    "apgd",
    "dlr",
    "deepfool",
    "cw",
    "nes",
    "spsa",
    "simba",
    "bpda",
    "feature-squeezing",
    "frechet",
    "classes-covered",
    "vat",
    "adversarial-training",
    "detection",
    "poisoning",
    "backdoor",
    "label-flip",
    "gan",
    "dcgan",
    "mode-collapse",
    "smoothing",
    "ibp",
    "trades",
)


def test_every_term_has_a_one_line_definition_and_a_paper():
    assert set(REQUIRED) <= set(GLOSSARY)
    for key, term in GLOSSARY.items():
        assert term.name and term.definition.endswith("."), key
        assert "\n" not in term.definition and len(term.definition) < 160, key
        assert re.search(r"(19|20)\d\d", term.reference), key  # authors and year at least


def test_every_catalogue_attack_has_a_glossary_entry():
    from advstudio.core.attacks.catalogue import names

    assert set(names()) <= set(GLOSSARY)


def test_tip_keeps_the_widgets_own_text_first(qtbot):
    from PySide6.QtWidgets import QLabel

    label = QLabel("ε")
    qtbot.addWidget(label)
    label.setToolTip("radius")
    tip(label, "eps-linf")
    assert label.toolTip().startswith("<p>radius</p>")
    assert label.toolTip().endswith(tooltip_text("eps-linf"))


def test_attack_tab_controls_explain_their_terms(build_tab):
    tab = build_tab("attack")
    assert "White-box" in tab.access.toolTip() and "Papernot" in tab.access.toolTip()
    assert "ε (L∞)" in tab.eps_label.toolTip() and "ε (L2)" in tab.eps_label.toolTip()
    item_tips = {
        tab.attack.itemData(i): tab.attack.itemData(i, Qt.ItemDataRole.ToolTipRole)
        for i in range(tab.attack.count())
    }
    assert item_tips and all(t == tooltip_text(k) for k, t in item_tips.items())
    tab.access.setCurrentIndex(tab.access.findData("query"))  # the list refills: tips again
    assert tab.attack.itemData(0, Qt.ItemDataRole.ToolTipRole) == tooltip_text(
        tab.attack.itemData(0)
    )
    assert "C&W" in tab.cw_c.toolTip() and "DLR" in tab.apgd_loss.toolTip()


def test_defence_tab_controls_explain_their_terms(build_tab):
    tab = build_tab("defence")
    recipe = tab.recipe.toolTip()
    assert "proactive" in recipe and "reactive" in recipe and "Miyato" in recipe
    assert "VAT" in tab.vat_eps.toolTip() and "PGD" in tab.pgd_steps.toolTip()
