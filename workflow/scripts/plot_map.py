"""The figure of one dense map (mean, std, a member, observed cells at the shallowest level)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import map_figure  # noqa: E402

with log_to(snakemake.log[0]):
    map_figure(snakemake.input.nc, snakemake.output.figure, snakemake.params.figures)
