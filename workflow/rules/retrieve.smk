# Retrieval: one job per period writes resources/raw/{source}/{period}.nc (+ eo/ when ostia);
# with argo_source: argopy one job per such scenario fetches its Argo profiles.
# Both download: local rules (compute nodes often have no internet).


localrules:
    retrieve,
    retrieve_argo,


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


# The Argo profiles of data.region and data.periods, down to the deepest depth level (argopy,
# no login); make_shards of that scenario reads them instead of argo_paths.
rule retrieve_argo:
    output:
        profiles="resources/argo/{scenario}/argo_prof.nc",
    log:
        "logs/retrieve_argo/{scenario}.log",
    benchmark:
        "results/benchmarks/retrieve_argo/{scenario}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        request=argo_request,
    script:
        "../scripts/retrieve_argo.py"
