"""Issue #19, item 9: no combo box in any tab elides its current text at 1280×720 (the long
names of recipes and networks went to the item tooltips, with their papers)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QStyle, QStyleOptionComboBox


def _elided(combo: QComboBox) -> bool:
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    text_rect = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    return combo.fontMetrics().horizontalAdvance(combo.currentText()) > text_rect.width()


def test_no_combo_in_any_tab_elides_its_text_at_1280x720(qtbot, window):
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720), timeout=5000)
    cut = []
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        qtbot.wait(30)
        page = window.tabs.widget(index)
        for combo in page.findChildren(QComboBox):
            if not combo.isVisibleTo(page) or combo.isEditable():
                continue
            # every item, not only the current one: a user may pick any of them (signals
            # blocked: choosing a model or data set here would start loading it)
            was = combo.currentIndex()
            combo.blockSignals(True)
            for item in range(combo.count()):
                combo.setCurrentIndex(item)
                if _elided(combo):
                    cut.append(
                        f"{window.tabs.tabText(index)}: {combo.currentText()!r} "
                        f"({combo.fontMetrics().horizontalAdvance(combo.currentText())} px "
                        f"in {combo.width()})"
                    )
            combo.setCurrentIndex(was)
            combo.blockSignals(False)
    assert not cut, cut


def test_the_gan_loss_page_combos_fit_at_1280x720(qtbot, window):
    """The test above measures the combos a tab shows at once; the GAN's "Loss & stabilisers"
    page is hidden behind its "Run" page until chosen, so it is measured here with it shown."""
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1280, 720), timeout=5000)
    index = next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "GAN")
    window.tabs.setCurrentIndex(index)
    page = window.tabs.widget(index)
    gan = getattr(page, "content", page)
    gan.settings_tabs.setCurrentWidget(gan.loss_page)
    qtbot.wait(30)
    cut = []
    for combo in (gan.loss, gan.lr_preset):
        combo.blockSignals(True)
        for item in range(combo.count()):
            combo.setCurrentIndex(item)
            if _elided(combo):
                cut.append(combo.currentText())
        combo.blockSignals(False)
    assert gan.lr_preset.count() == 4 and not cut, cut
