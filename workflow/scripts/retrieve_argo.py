"""Fetch one argopy scenario's Argo profiles into a GDAC-like *_prof.nc (rule retrieve_argo)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.data.argo_fetch import retrieve_argo  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]):
    retrieve_argo(dict(snakemake.params.request), snakemake.output.profiles, snakemake.wildcards.scenario)
