"""The references of the leave-floats-out validation: the gridded truth and the train climatology, scored at
the withheld floats' observations like the methods."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.holdout import score_references  # noqa: E402
from depthdif.eval.scoring import write_scores  # noqa: E402
from depthdif.logs import log_to  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]) as log:
    for folder in (snakemake.input.test, snakemake.input.train):
        verify_shards(folder)  # once per job, before reading
    scores = score_references(snakemake.input.test, snakemake.input.train, scenario=snakemake.wildcards.scenario)
    write_scores(scores, snakemake.output.scores)
    log.info("references at the withheld observations:\n%s", scores.to_string(index=False))
