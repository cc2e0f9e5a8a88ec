# Training: standard and ambient diffusion objectives and the deterministic unet baseline.
# Resume state lives in results/checkpoints/ (not an output, so Snakemake never deletes it).


rule train_model:
    input:
        train="results/shards/{scenario}/train",
        val="results/shards/{scenario}/val",
    output:
        checkpoint="results/models/{scenario}/{objective}/model.ckpt",
        metrics="results/models/{scenario}/{objective}/metrics.csv",
    log:
        "logs/train_model/{scenario}_{objective}.log",
    benchmark:
        "results/benchmarks/train_model/{scenario}_{objective}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        sections=train_params,
        runtime=RUNTIME,
        state_dir=lambda wildcards: f"results/checkpoints/{wildcards.scenario}/{wildcards.objective}",
    script:
        "../scripts/train_model.py"
