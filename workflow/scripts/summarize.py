"""One row per scenario × method × depth; the Markdown table goes to the log too."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.eval.scoring import markdown_table, summarize  # noqa: E402
from depthdif.io import atomic_output  # noqa: E402

with log_to(snakemake.log[0]) as log:
    summary = summarize(list(snakemake.input.scores))
    table = markdown_table(summary)
    log.info("summary\n%s", table)
    with atomic_output(snakemake.output.table) as tmp:
        tmp.write_text(table + "\n")
    with atomic_output(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
