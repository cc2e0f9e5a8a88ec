# Scoring: every method's samples netCDF scored by the same code on hidden ocean pixels;
# with leave-floats-out validation (HOLDOUT scenarios) also at the withheld floats' observations.
# The rules take seconds: on a cluster they run where Snakemake runs, not as jobs.


localrules:
    score,
    summarize,
    score_holdout,
    score_holdout_reference,
    summarize_holdout,


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


rule score_holdout:
    input:
        samples=lambda wildcards: samples_file(wildcards.scenario, wildcards.method),
    output:
        scores="results/metrics/{scenario}/{method}.holdout.csv",
    log:
        "logs/score_holdout/{scenario}_{method}.log",
    benchmark:
        "results/benchmarks/score_holdout/{scenario}_{method}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/score_holdout.py"


rule score_holdout_reference:
    input:
        test=shards("test"),
        train=shards("train"),
    output:
        scores="results/metrics/{scenario}/reference.holdout.csv",
    log:
        "logs/score_holdout_reference/{scenario}.log",
    benchmark:
        "results/benchmarks/score_holdout_reference/{scenario}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/score_holdout_reference.py"


rule summarize_holdout:
    input:
        scores=[
            *expand(
                rules.score_holdout.output.scores, scenario=HOLDOUT, method=METHODS
            ),
            *expand(rules.score_holdout_reference.output.scores, scenario=HOLDOUT),
        ],
    output:
        table=report(
            "results/metrics/holdout.csv",
            caption="../report/holdout.rst",
            category="Metrics",
        ),
        markdown="results/metrics/holdout.md",
    log:
        "logs/summarize_holdout/summarize_holdout.log",
    benchmark:
        "results/benchmarks/summarize_holdout/summarize_holdout.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarize_holdout.py"
