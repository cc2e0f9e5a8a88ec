"""Figures 7 and 8: ensemble calibration and radially averaged power spectra."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import calibration, power_spectra  # noqa: E402

with log_to(snakemake.log[0]):
    samples = dict(snakemake.input.items())
    calibration(samples, snakemake.output.calibration, snakemake.params.figures)
    power_spectra(samples, snakemake.output.spectra, snakemake.params.figures)
