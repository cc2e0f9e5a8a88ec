"""Score one method's reconstructions on the hidden ocean pixels (per patch and depth), with its
rank histogram and spread deciles (empty for a deterministic method)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.scoring import score_file, write_calibration, write_scores  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]) as log:
    scores, calibration = score_file(
        snakemake.input.samples,
        scenario=snakemake.wildcards.scenario,
        method=snakemake.wildcards.method,
        rank_members=snakemake.params.score.get("rank_members"),
    )
    write_scores(scores, snakemake.output.scores)
    write_calibration(calibration, snakemake.output.calibration)
    log.info("%s: %d score rows, forecast %s", snakemake.wildcards.method, len(scores), scores["forecast"].iloc[0])
