"""Figure 3: what the ambient objective sees of one real training sample."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import ambient_walkthrough  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]):
    verify_shards(snakemake.input.shards)
    ambient_walkthrough(
        snakemake.input.shards,
        snakemake.output.figure,
        snakemake.params.figures,
        snakemake.params.ambient,
    )
