# Dense maps of the whole region, one job per method and period (target `maps`): overlapping
# windows of the patch size, blended; diffusion windows share one state at every sampler step.


localrules:
    plot_map,


rule map_region:
    input:
        unpack(map_inputs),
    output:
        nc="results/maps/{method}/{period}.nc",
    log:
        "logs/map_region/{method}_{period}.log",
    benchmark:
        "results/benchmarks/map_region/{method}_{period}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        sections=map_params,
        data=data_params(),
        runtime=RUNTIME,
    script:
        "../scripts/map_region.py"


rule plot_map:
    input:
        nc=rules.map_region.output.nc,
    output:
        figure=report(
            "results/figures/maps/{method}/{period}.png",
            caption="../report/map.rst",
            category="Maps",
            subcategory="{method}",
        ),
    log:
        "logs/plot_map/{method}_{period}.log",
    benchmark:
        "results/benchmarks/plot_map/{method}_{period}.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
    script:
        "../scripts/plot_map.py"
