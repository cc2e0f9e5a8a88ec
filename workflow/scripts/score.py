"""Score one method's reconstructions on the hidden ocean pixels (per patch and depth)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.eval.scoring import score_samples, write_scores  # noqa: E402

with log_to(snakemake.log[0]):
    scores = score_samples(
        snakemake.input.samples,
        scenario=snakemake.wildcards.scenario,
        method=snakemake.wildcards.method,
    )
    write_scores(scores, snakemake.output.scores)
