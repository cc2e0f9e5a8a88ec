"""Score one method's reconstructions at the withheld floats' observations (leave-floats-out validation)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.holdout import score_holdout  # noqa: E402
from depthdif.eval.scoring import write_scores  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]) as log:
    scores = score_holdout(
        snakemake.input.samples, scenario=snakemake.wildcards.scenario, method=snakemake.wildcards.method
    )
    write_scores(scores, snakemake.output.scores)
    log.info("%s at the withheld observations:\n%s", snakemake.wildcards.method, scores.to_string(index=False))
