"""Figures of loss surfaces: contours, heat maps, 3D surfaces, 1D curves, comparisons, paths.

`figures` draws them (the only part of landscape that imports matplotlib, with `scales`, the
numbers behind them: values, colour ranges, contour levels, 3D heights).
"""

from .figures import (
    _STYLE,
    CMAP,
    FIG_FORMATS,
    KINDS_1D,
    KINDS_2D,
    metric_label,
    plot_compare,
    plot_file,
    plot_heatmap_array,
    plot_repeats,
    plot_surface,
    plot_trajectory,
    save_figure,
)
from .scales import DEFAULT_LEVELS, lower_is_better, surface3d_heights

__all__ = [
    "CMAP",
    "DEFAULT_LEVELS",
    "FIG_FORMATS",
    "KINDS_1D",
    "KINDS_2D",
    "lower_is_better",
    "metric_label",
    "plot_compare",
    "plot_file",
    "plot_heatmap_array",
    "plot_repeats",
    "plot_surface",
    "plot_trajectory",
    "save_figure",
    "surface3d_heights",
    "_STYLE",
]
