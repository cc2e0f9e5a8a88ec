# Retrieval: one job per period writes resources/raw/{source}/{period}.nc (+ eo/ when ostia).


localrules:
    retrieve,


onstart:
    check_retrieval_credentials()


rule retrieve:
    input:
        source_files(),
    output:
        **retrieve_outputs(),
    log:
        "logs/retrieve/{period}.log",
    benchmark:
        "results/benchmarks/retrieve/{period}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        data=data_params(),
        runtime=RUNTIME,
    script:
        "../scripts/retrieve.py"
