# Figures (results/figures/*.png), each flagged for `snakemake --report`.


localrules:
    plot_dataset,
    plot_reconstruction,
    plot_ambient_walkthrough,
    plot_metrics,
    plot_training_curves,
    plot_ensembles,


rule plot_dataset:
    input:
        shards=shards("test"),
    output:
        figure=report(
            "results/figures/dataset_{scenario}.png",
            caption="../report/dataset.rst",
            category="Data",
            subcategory="{scenario}",
        ),
    log:
        "logs/plot_dataset/{scenario}.log",
    benchmark:
        "results/benchmarks/plot_dataset/{scenario}.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
    script:
        "../scripts/plot_dataset.py"


rule plot_reconstruction:
    input:
        unpack(lambda wildcards: samples_of(wildcards.scenario)),
    output:
        figure=report(
            "results/figures/reconstruction_{scenario}.png",
            caption="../report/reconstruction.rst",
            category="Reconstructions",
            subcategory="{scenario}",
        ),
    log:
        "logs/plot_reconstruction/{scenario}.log",
    benchmark:
        "results/benchmarks/plot_reconstruction/{scenario}.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
    script:
        "../scripts/plot_reconstruction.py"


rule plot_ambient_walkthrough:
    input:
        shards=shards("train", SCENARIOS[0]),
    output:
        figure=report(
            "results/figures/ambient_walkthrough.png",
            caption="../report/ambient_walkthrough.rst",
            category="Data",
        ),
    log:
        "logs/plot_ambient_walkthrough/plot_ambient_walkthrough.log",
    benchmark:
        "results/benchmarks/plot_ambient_walkthrough/plot_ambient_walkthrough.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
        ambient=config["objectives"]["ambient"],
    script:
        "../scripts/plot_ambient_walkthrough.py"


rule plot_metrics:
    input:
        summary=rules.summarize.output.summary,
    output:
        vs_fraction=report(
            "results/figures/metrics_vs_fraction.png",
            caption="../report/metrics_vs_fraction.rst",
            category="Metrics",
        ),
        by_depth=report(
            "results/figures/rmse_by_depth.png",
            caption="../report/rmse_by_depth.rst",
            category="Metrics",
        ),
    log:
        "logs/plot_metrics/plot_metrics.log",
    benchmark:
        "results/benchmarks/plot_metrics/plot_metrics.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        # None for argo_profiles (real profiles: no set fraction; left out of that figure)
        fractions={name: s.get("fraction") for name, s in config["scenarios"].items()},
        figures=config["figures"],
    script:
        "../scripts/plot_metrics.py"


rule plot_training_curves:
    input:
        **training_curves_inputs(),
    output:
        figure=report(
            "results/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        "logs/plot_training_curves/plot_training_curves.log",
    benchmark:
        "results/benchmarks/plot_training_curves/plot_training_curves.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
    script:
        "../scripts/plot_training_curves.py"


rule plot_ensembles:
    input:
        unpack(lambda wildcards: samples_of(SCENARIOS[0])),
        summary=rules.summarize.output.summary,
        calibration=rules.summarize.output.calibration,
    output:
        calibration=report(
            "results/figures/calibration.png",
            caption="../report/calibration.rst",
            category="Reconstructions",
        ),
        spectra=report(
            "results/figures/power_spectra.png",
            caption="../report/power_spectra.rst",
            category="Reconstructions",
        ),
    log:
        "logs/plot_ensembles/plot_ensembles.log",
    benchmark:
        "results/benchmarks/plot_ensembles/plot_ensembles.tsv"
    conda:
        "../../envs/plots.yaml"
    params:
        figures=config["figures"],
        scenario=SCENARIOS[0],
        methods=METHODS,
    script:
        "../scripts/plot_ensembles.py"
