"""Figures 4 and 5: metrics against occlusion fraction, RMSE per depth level."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import metrics_vs_fraction, rmse_by_depth  # noqa: E402

with log_to(snakemake.log[0]):
    metrics_vs_fraction(
        snakemake.input.summary,
        dict(snakemake.params.fractions),
        snakemake.output.vs_fraction,
        snakemake.params.figures,
    )
    rmse_by_depth(snakemake.input.summary, snakemake.output.by_depth, snakemake.params.figures)
