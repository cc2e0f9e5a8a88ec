# Occlusion shards: one job per scenario and split.


rule make_shards:
    input:
        index=rules.gather_patches.output.index,
        stats=rules.gather_patches.output.stats,
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
