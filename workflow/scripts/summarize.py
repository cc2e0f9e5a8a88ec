"""One row per scenario × method × depth, the calibration tables of every method gathered, and
summary.md (scores, CRPS / spread-skill / rank histograms, spread deciles); the Markdown goes to the log too."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.scoring import gather_calibration, markdown_report, summarize  # noqa: E402
from depthdif.io import atomic_output  # noqa: E402
from depthdif.logs import log_to  # noqa: E402

with log_to(snakemake.log[0]) as log:
    summary = summarize(list(snakemake.input.scores))
    calibration = gather_calibration(list(snakemake.input.calibration))
    report = markdown_report(summary, calibration)
    log.info("summary\n%s", report)
    with atomic_output(snakemake.output.table) as tmp:
        tmp.write_text(report + "\n")
    with atomic_output(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_output(snakemake.output.calibration) as tmp:
        calibration.to_csv(tmp, index=False)
