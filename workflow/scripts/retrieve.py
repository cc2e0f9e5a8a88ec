"""Retrieve (or synthesise) one period of raw thetao and, with eo: ostia, its EO field."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.data.retrieve import retrieve_period  # noqa: E402

with log_to(snakemake.log[0]):
    retrieve_period(
        snakemake.wildcards.period,
        snakemake.params.data,
        snakemake.output.thetao,
        snakemake.output.get("eo"),
    )
