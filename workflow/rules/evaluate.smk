# Scoring: every method's samples netCDF scored by the same code on hidden ocean pixels.
# Both rules take a second: on a cluster they run where Snakemake runs, not as jobs.


localrules:
    score,
    summarize,


rule score:
    input:
        samples="results/samples/{scenario}/{method}.nc",
    output:
        scores="results/metrics/{scenario}/{method}.csv",
    log:
        "logs/score/{scenario}_{method}.log",
    benchmark:
        "results/benchmarks/score/{scenario}_{method}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/score.py"


rule summarize:
    input:
        scores=expand(
            "results/metrics/{scenario}/{method}.csv",
            scenario=SCENARIOS,
            method=METHODS,
        ),
    output:
        summary=report(
            "results/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
        table="results/metrics/summary.md",
    log:
        "logs/summarize/summarize.log",
    benchmark:
        "results/benchmarks/summarize/summarize.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarize.py"
