"""Gather the leave-floats-out scores of every method and reference: holdout.csv and holdout.md (also logged)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.holdout import gather_holdout, holdout_markdown  # noqa: E402
from depthdif.eval.scoring import write_scores  # noqa: E402
from depthdif.io import atomic_output  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]) as log:
    table = gather_holdout(list(snakemake.input.scores))
    text = holdout_markdown(table)
    log.info("leave-floats-out validation\n%s", text)
    write_scores(table, snakemake.output.table)
    with atomic_output(snakemake.output.markdown) as tmp:
        tmp.write_text(text + "\n")
