"""Figure 2: reconstruction grid of one scenario (input, truth, methods, errors, spread)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import reconstruction_grid  # noqa: E402

with log_to(snakemake.log[0]):
    reconstruction_grid(
        dict(snakemake.input.items()),
        snakemake.output.figure,
        snakemake.params.figures,
        scenario=snakemake.wildcards.scenario,
    )
