# Reconstructions of the test split: learned methods sample, baselines interpolate.
# Every method writes the same samples netCDF, scored by the same code.


rule calibrate_ensemble:
    input:
        checkpoint=rules.train_model.output.checkpoint,
        val=shards("val"),
    output:
        inflation="results/calibration/{scenario}/{learned}.json",
    log:
        "logs/calibrate_ensemble/{scenario}_{learned}.log",
    benchmark:
        "results/benchmarks/calibrate_ensemble/{scenario}_{learned}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sample=sample_params,
        runtime=RUNTIME,
    script:
        "../scripts/calibrate_ensemble.py"


rule sample_model:
    input:
        checkpoint=rules.train_model.output.checkpoint,
        test=shards("test"),
        inflation=inflation_file,
    output:
        samples="results/samples/{scenario}/{learned}.nc",
    log:
        "logs/sample_model/{scenario}_{learned}.log",
    benchmark:
        "results/benchmarks/sample_model/{scenario}_{learned}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sample=sample_params,
        runtime=RUNTIME,
    script:
        "../scripts/sample_model.py"


rule run_baseline:
    input:
        test=shards("test"),
        train=shards("train"),
    output:
        samples="results/samples/{scenario}/{baseline}.nc",
    log:
        "logs/run_baseline/{scenario}_{baseline}.log",
    benchmark:
        "results/benchmarks/run_baseline/{scenario}_{baseline}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        baseline=baseline_params,
    script:
        "../scripts/run_baseline.py"
