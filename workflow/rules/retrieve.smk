# Retrieval: one job per period writes resources/raw/{source}/{period}.nc (+ eo/ when ostia).


localrules:
    retrieve,


onstart:
    check_retrieval_credentials()


rule retrieve:
    output:
        **retrieve_outputs(),
    params:
        data=data_params(),
    log:
        "logs/retrieve/{period}.log",
    benchmark:
        "results/benchmarks/retrieve/{period}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/retrieve.py"
