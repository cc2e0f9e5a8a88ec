"""Write the occlusion shards of one scenario and split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.data.occlusion import write_split_shards  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

scenario = dict(snakemake.params.scenario)
if scenario.get("argo_source") == "argopy":  # the profiles rule retrieve_argo fetched, not argo_paths
    scenario["argo_paths"] = list(snakemake.input.argo)

with log_to(snakemake.log[0]) as log:
    summary = write_split_shards(
        snakemake.input.index,
        snakemake.input.stats,
        list(snakemake.input.patches),
        snakemake.wildcards.scenario,
        scenario,
        snakemake.wildcards.split,
        snakemake.params.shard_size,
        snakemake.output.shards,
    )
    log.info("shards: %s", summary)
