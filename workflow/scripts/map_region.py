"""Dense map of the whole region for one method and period (overlapping windows, blended)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import torch  # noqa: E402

from depthdif.logs import log_to  # noqa: E402

# Small convolutions scale badly across threads; Snakemake runs one job per core instead.
torch.set_num_threads(snakemake.threads)
from depthdif.inflation import Inflation  # noqa: E402
from depthdif.io import read_json  # noqa: E402
from depthdif.maps import run_map  # noqa: E402
from depthdif.params import complete  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]) as log:
    # params: the keys that change the map; the runtime file fills in the rest (maps.batch_size, ...)
    sections, runtime = snakemake.params.sections, snakemake.params.runtime
    if "train" in snakemake.input.keys():
        verify_shards(snakemake.input.train)  # once per job, before reading
    result = run_map(
        snakemake.wildcards.method,
        snakemake.wildcards.period,
        thetao=snakemake.input.thetao,
        eo=snakemake.input.get("eo"),
        stats=read_json(snakemake.input.stats),
        data_cfg=complete(snakemake.params.data, runtime, "data"),
        patches_cfg=sections["patches"],
        scenario=sections["maps"]["scenario"],
        # argo_source argopy: the profiles rule retrieve_argo fetched, not argo_paths
        scenario_cfg={**sections["scenario"], "argo_paths": list(snakemake.input.argo)}
        if sections["scenario"].get("argo_source") == "argopy"
        else sections["scenario"],
        maps_cfg=complete(sections["maps"], runtime, "maps"),
        out_nc=snakemake.output.nc,
        checkpoint=snakemake.input.get("checkpoint"),
        sample_cfg=complete(sections["sample"], runtime, "sample") if "sample" in sections else None,
        train_dir=snakemake.input.get("train"),
        baseline_cfg=sections.get("baseline"),
        inflation=Inflation.from_json(snakemake.input.inflation) if "inflation" in snakemake.input.keys()
        else None,
    )
    log.info("map finished: %s", result)
