"""Figures of the workflow (PNG, Agg canvas, constrained layout), one module per figure family.

Every function takes explicit input paths, the output PNG path and (optionally) the
`figures` config section ({examples, dpi}).
"""

from depthdif.plots.curves import metrics_vs_fraction, rmse_by_depth, training_curves
from depthdif.plots.ensembles import calibration, power_spectra
from depthdif.plots.examples import ambient_walkthrough, dataset_example
from depthdif.plots.maps import map_figure
from depthdif.plots.reconstruction import reconstruction_grid

__all__ = [
    "ambient_walkthrough",
    "calibration",
    "dataset_example",
    "map_figure",
    "metrics_vs_fraction",
    "power_spectra",
    "reconstruction_grid",
    "rmse_by_depth",
    "training_curves",
]
