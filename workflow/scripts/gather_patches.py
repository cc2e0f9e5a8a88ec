"""Index all kept patches, split them by spatial blocks, compute train-only stats."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.data.index import gather_patches  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]):
    gather_patches(
        list(snakemake.input.patches),
        snakemake.params.patches,
        snakemake.output.index,
        snakemake.output.stats,
    )
