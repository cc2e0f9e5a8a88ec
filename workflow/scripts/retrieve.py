"""Retrieve (or synthesise) one period of raw thetao and, with eo: ostia, its EO field."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.data.retrieve import retrieve_period  # noqa: E402
from depthdif.logs import log_to  # noqa: E402
from depthdif.params import complete  # noqa: E402

with log_to(snakemake.log[0]):
    retrieve_period(
        snakemake.wildcards.period,
        # params: the keys that change the output; the runtime file fills in the rest
        complete(snakemake.params.data, snakemake.params.runtime, "data"),
        snakemake.output.thetao,
        snakemake.output.get("eo"),
    )
