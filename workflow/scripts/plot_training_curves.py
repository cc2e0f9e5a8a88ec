"""Figure 6: training and validation curves from the Lightning CSV logs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import training_curves  # noqa: E402

with log_to(snakemake.log[0]):
    training_curves(dict(snakemake.input.items()), snakemake.output.figure, snakemake.params.figures)
