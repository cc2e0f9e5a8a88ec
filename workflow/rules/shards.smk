# Occlusion shards: one job per scenario and split.


rule make_shards:
    input:
        index="results/patches/index.parquet",
        stats="results/patches/stats.json",
        patches=patch_files(),
        argo=argo_files,
    output:
        shards=directory("results/shards/{scenario}/{split}"),
    log:
        "logs/make_shards/{scenario}_{split}.log",
    benchmark:
        "results/benchmarks/make_shards/{scenario}_{split}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        scenario=scenario_params,
        shard_size=config["shards"]["shard_size"],
    script:
        "../scripts/make_shards.py"
