"""Plot colours that follow the application's theme (Preferences ▸ Theme: light, dark, system).

Why plots need their own: pyqtgraph draws with its own colours, not the Qt palette, so under the
dark palette every plot stayed a white rectangle with grey text. :func:`themed` gives a plot the
colours of the current palette and keeps it (weakly) so :func:`restyle_all` can recolour it when
the theme changes; pyqtgraph's defaults (``setConfigOption``) follow as well, for plots made
later. "Dark" means the palette's window colour is dark, so a dark *system* theme gets dark
plots too.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class PlotColours:
    dark: bool
    background: tuple[int, ...]
    foreground: tuple[int, ...]  # axes, tick labels, titles
    legend_brush: tuple[int, ...]
    legend_pen: tuple[int, ...]
    legend_text: tuple[int, ...]
    faint: tuple[int, ...]  # the planned-end line and similar hints
    readout: str  # a CSS colour for the hover read-out under a plot


LIGHT = PlotColours(
    dark=False,
    background=(255, 255, 255),
    foreground=(110, 110, 110),
    legend_brush=(255, 255, 255, 200),
    legend_pen=(0, 0, 0, 60),
    legend_text=(40, 40, 40),
    faint=(0, 0, 0, 60),
    readout="#444",
)
DARK = PlotColours(
    dark=True,
    background=(30, 30, 30),
    foreground=(205, 205, 205),
    legend_brush=(45, 45, 45, 210),
    legend_pen=(255, 255, 255, 70),
    legend_text=(230, 230, 230),
    faint=(255, 255, 255, 80),
    readout="#c8c8c8",
)

_plots: list[tuple[weakref.ref, weakref.ref | None]] = []  # plots and their extras, weakly


def current() -> PlotColours:
    """The colours for the application's palette now (dark when its window colour is)."""
    app = QApplication.instance()
    if app is None:
        return LIGHT
    window = app.palette().color(QPalette.ColorRole.Window)
    return DARK if window.lightness() < 128 else LIGHT


def style_plot(plot_widget, colours: PlotColours) -> None:
    """Background, axes, tick labels, axis labels, title and legend of one pyqtgraph plot."""
    item = plot_widget.getPlotItem()
    plot_widget.setBackground(colours.background)
    for side in ("left", "bottom", "top", "right"):
        axis = item.getAxis(side)
        axis.setPen(colours.foreground)
        axis.setTextPen(colours.foreground)
    title = item.titleLabel
    if title.text:  # setTitle(None) would hide the title row
        title.setText(title.text, color=colours.foreground)
    legend = getattr(item, "legend", None)
    if legend is not None:
        legend.setBrush(colours.legend_brush)
        legend.setPen(colours.legend_pen)
        legend.setLabelTextColor(colours.legend_text)


def themed(plot_widget, extra: Callable[[PlotColours], None] | None = None):
    """Give ``plot_widget`` the current theme's colours now and at every theme change;
    ``extra(colours)`` recolours what else its owner drew (hints, read-outs). Returns the
    plot."""
    ref = None
    if extra is not None:  # a bound method (the usual) must not keep its widget alive
        ref = weakref.WeakMethod(extra) if hasattr(extra, "__self__") else weakref.ref(extra)
    _plots.append((weakref.ref(plot_widget), ref))
    _restyle(plot_widget, ref, current())
    return plot_widget


def _restyle(plot_widget, extra_ref, colours: PlotColours) -> None:
    style_plot(plot_widget, colours)
    extra = extra_ref() if extra_ref is not None else None
    if extra is not None:
        extra(colours)


def restyle_all() -> int:
    """Recolour every live themed plot for the palette now (after ``apply_theme``) and make
    pyqtgraph's defaults match; returns how many plots were recoloured."""
    import pyqtgraph as pg
    import shiboken6

    colours = current()
    pg.setConfigOption("background", colours.background)
    pg.setConfigOption("foreground", colours.foreground)
    alive = []
    for ref, extra in _plots:
        plot = ref()
        if plot is not None and shiboken6.isValid(plot):
            alive.append((ref, extra))
            _restyle(plot, extra, colours)
    _plots[:] = alive
    return len(alive)
