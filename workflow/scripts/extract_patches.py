"""Extract the patches of one period that pass the nodata filter."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.data.patches import extract_period  # noqa: E402
from depthdif.logs import log_to  # noqa: E402
from depthdif.params import complete  # noqa: E402

with log_to(snakemake.log[0]) as log:
    summary = extract_period(
        snakemake.input.thetao,
        snakemake.input.get("eo"),
        snakemake.wildcards.period,
        # params: the keys that change the output; the runtime file fills in the rest
        complete(snakemake.params.data, snakemake.params.runtime, "data"),
        snakemake.params.patches,
        snakemake.output.patches,
        source_file=snakemake.input.thetao,
    )
    log.info("patches of %s: %s", snakemake.wildcards.period, summary)
