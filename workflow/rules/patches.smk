# Patch extraction (one job per period) and the gather job (index, split, train stats).


rule extract_patches:
    input:
        **rules.retrieve.output,
    output:
        patches="results/patches/{period}.npz",
    log:
        "logs/extract_patches/{period}.log",
    benchmark:
        "results/benchmarks/extract_patches/{period}.tsv"
    group:
        "periods"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
    params:
        data=data_params(),
        patches=extract_params(),
        runtime=RUNTIME,
    script:
        "../scripts/extract_patches.py"


# a checkpoint: the maps of the test periods (maps.periods empty) read its index
checkpoint gather_patches:
    input:
        patches=patch_files(),
    output:
        index="results/patches/index.parquet",
        stats="results/patches/stats.json",
    log:
        "logs/gather_patches/gather_patches.log",
    benchmark:
        "results/benchmarks/gather_patches/gather_patches.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        patches=config["patches"],
    script:
        "../scripts/gather_patches.py"
