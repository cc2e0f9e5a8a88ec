# Training ({learned}): standard and ambient diffusion objectives and the deterministic unet baseline.
# Resume state lives in results/checkpoints/ (not an output, so Snakemake never deletes it).


rule train_model:
    input:
        train=shards("train"),
        val=shards("val"),
    output:
        checkpoint="results/models/{scenario}/{learned}/model.ckpt",
        metrics="results/models/{scenario}/{learned}/metrics.csv",
    log:
        "logs/train_model/{scenario}_{learned}.log",
    benchmark:
        "results/benchmarks/train_model/{scenario}_{learned}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        sections=train_params,
        runtime=RUNTIME,
        state_dir=lambda wildcards: f"results/checkpoints/{wildcards.scenario}/{wildcards.learned}",
    script:
        "../scripts/train_model.py"
