# DepthDif: sparse ocean temperature observations -> dense 3-D fields (conditional diffusion).
# Stages live in workflow/rules/*.smk; helpers and input functions in common.smk only.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default applies only when no config file is given (`--configfile`, or a
# profile's `configfile:`): a user's config means what it says, its `scenarios` are not
# merged with the default's. Keys it leaves out get the schema defaults.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/retrieve.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/maps.smk"


rule all:
    default_target: True
    input:
        all_targets(),


rule data:
    input:
        data_targets(),


rule train:
    input:
        train_targets(),


rule sample:
    input:
        sample_targets(),


rule evaluate:
    input:
        evaluate_targets(),


rule figures:
    input:
        figure_targets(),


rule maps:
    input:
        map_targets,
