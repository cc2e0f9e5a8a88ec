# Scoring: every method's samples netCDF scored by the same code on hidden ocean pixels.
# Both rules take a second: on a cluster they run where Snakemake runs, not as jobs.


localrules:
    score,
    summarize,


rule score:
    input:
        samples=lambda wildcards: samples_file(wildcards.scenario, wildcards.method),
    output:
        scores="results/metrics/{scenario}/{method}.csv",
        calibration="results/metrics/{scenario}/{method}.calibration.csv",
    log:
        "logs/score/{scenario}_{method}.log",
    benchmark:
        "results/benchmarks/score/{scenario}_{method}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        score=score_params,
    script:
        "../scripts/score.py"


rule summarize:
    input:
        scores=expand(rules.score.output.scores, scenario=SCENARIOS, method=METHODS),
        calibration=expand(
            rules.score.output.calibration, scenario=SCENARIOS, method=METHODS
        ),
    output:
        summary=report(
            "results/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
        table="results/metrics/summary.md",
        calibration="results/metrics/calibration.csv",
    log:
        "logs/summarize/summarize.log",
    benchmark:
        "results/benchmarks/summarize/summarize.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarize.py"
