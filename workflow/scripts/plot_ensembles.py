"""Figures 7 and 8: calibration of every method (CRPS, spread/skill, spread deciles, rank histograms;
from the summarize rule's tables) and radially averaged power spectra (from the samples)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import calibration, power_spectra  # noqa: E402

with log_to(snakemake.log[0]):
    methods = list(snakemake.params.methods)
    inputs = dict(snakemake.input.items())
    samples = {method: inputs[method] for method in methods}
    calibration(snakemake.input.summary, snakemake.input.calibration, snakemake.output.calibration,
                snakemake.params.figures, scenario=snakemake.params.scenario, methods=methods)
    power_spectra(samples, snakemake.output.spectra, snakemake.params.figures)
