# Helpers and input functions only (no rules): config validation, wildcard values,
# per-rule config sub-trees (params) and target lists. Paths are written once, in the
# rules' outputs; everything else refers to them as rules.<rule>.output.<name>.
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from depthdif import params as rule_params  # noqa: E402
from depthdif.config import validate_config  # noqa: E402
from depthdif.data.periods import PERIOD_PATTERN, list_periods  # noqa: E402
from depthdif.inputs import user_file_sets, write_checksums  # noqa: E402

validate_config(
    config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
)
# Checks that need the file system, at start (dry runs included): every user glob matches.
USER_FILES = user_file_sets(config)
# Content checksums of the user's files (rewritten only when one changed; see README).
USER_CHECKSUMS = write_checksums(USER_FILES)
# The complete config for the jobs' runtime-only keys; not an input of any rule.
RUNTIME = rule_params.RUNTIME_FILE
rule_params.write_runtime(config)

SOURCE = config["data"]["source"]
PERIODS = list_periods(config["data"])
SCENARIOS = list(config["scenarios"])
# argo_profiles scenarios with leave-floats-out validation (scored at the withheld floats too)
HOLDOUT = rule_params.holdout_scenarios(config)
SPLITS = ["train", "val", "test"]
# trained models ({learned}: train_model, sample_model) and classical gap-fillers
# ({baseline}: run_baseline); {method} is either
LEARNED = ["unet", "standard", "ambient"]
BASELINES = ["idw", "oi", "oi_eo"]
# baselines with a Gaussian predictive std (scored with the closed-form CRPS and a PIT histogram)
GAUSSIAN = ["oi", "oi_eo"]
METHODS = list(config["evaluate"]["methods"])
WITH_EO = config["data"]["eo"] == "ostia"
# the maps section with its config-dependent defaults (methods, scenario, stride, members)
MAPS = rule_params.maps_section(config)


wildcard_constraints:
    period=PERIOD_PATTERN,
    scenario="|".join(SCENARIOS),
    split="|".join(SPLITS),
    learned="|".join(LEARNED),
    baseline="|".join(BASELINES),
    method="|".join(LEARNED + BASELINES),


# --- params of each rule (only the keys that change its outputs; config/README.md) ---
# Snakemake's params trigger reruns exactly these; runtime-only keys reach the job through
# the runtime file (RUNTIME), which the scripts merge back under their params.


def data_params():
    """The active source's data keys, without the period list (adding a period reruns only new jobs)."""
    return rule_params.data_params(config)


def extract_params():
    """What patch extraction depends on: tiling and nodata filtering, not the split."""
    return {k: v for k, v in config["patches"].items() if k != "split"}


def scenario_params(wildcards):
    """The scenario's keys (the holdout keys only while holdout_floats > 0)."""
    return rule_params.scenario_params(config, wildcards.scenario)


def argo_request(wildcards):
    """What retrieve_argo asks argopy for (fetcher, user mode, boxes from data.region, data.periods
    and the deepest data.depth_levels): a changed request reruns it."""
    # imported here: it loads xarray, needed only when the rule is planned
    from depthdif.data.argo_fetch import fetch_request

    return fetch_request(config["scenarios"][wildcards.scenario], config["data"])


def train_params(wildcards):
    """model, objective and train keys of one learned method (no diffusion key for the unet)."""
    return rule_params.train_params(config, wildcards.learned)


def sample_params(wildcards):
    """Sampler keys of a diffusion method; the deterministic unet uses none."""
    return rule_params.sample_params(config, wildcards.learned)


def inflation_file(wildcards):
    """The validation-fitted ensemble inflation of a method in sample.inflation_methods (else none)."""
    if wildcards.learned not in config["sample"]["inflation_methods"]:
        return []
    return rules.calibrate_ensemble.output.inflation


def baseline_params(wildcards):
    """evaluate.idw or evaluate.oi (oi_eo fits the same covariance family as oi)."""
    section = "oi" if wildcards.baseline == "oi_eo" else wildcards.baseline
    return config["evaluate"][section]


def score_params(wildcards):
    """A Gaussian forecast's PIT histogram gets K+1 bins, K = sample.members (the ensembles' K)."""
    if wildcards.method in GAUSSIAN:
        return {"rank_members": config["sample"]["members"]}
    return {}


def map_params(wildcards):
    """The keys that change one method's map (maps.batch_size is runtime only)."""
    return rule_params.map_params(config, wildcards.method)


# --- the user's own files (tracked by their content checksums) ---


def user_files(key):
    """The checksum file of one config key's files ([] when the key is not used): their content is
    the input, so a changed file reruns its jobs and a touched or re-staged copy does not. The
    jobs read the files by the config key (params)."""
    if key not in USER_FILES:
        return []
    return [USER_CHECKSUMS[key]]


def source_files():
    """The netcdf source's tracked files (data.netcdf.paths, and eo_paths with eo: ostia): checksums."""
    return user_files("data.netcdf.paths") + user_files("data.netcdf.eo_paths")


def argo_source(scenario):
    return config["scenarios"][scenario].get("argo_source", "files")


def argo_files(wildcards):
    """An argo scenario's Argo input: its argo_paths' checksum file, or with argo_source argopy
    the file retrieve_argo writes."""
    if argo_source(wildcards.scenario) == "argopy":
        return expand(rules.retrieve_argo.output.profiles, scenario=wildcards.scenario)
    return user_files(f"scenarios.{wildcards.scenario}.argo_paths")


# --- paths: the retrieval's outputs; all others from rules.<rule>.output (called after the rule) ---


def retrieve_outputs():
    outputs = {"thetao": f"resources/raw/{SOURCE}/{{period}}.nc"}
    if WITH_EO:
        outputs["eo"] = f"resources/raw/{SOURCE}/eo/{{period}}.nc"
    return outputs


def patch_files():
    return expand(rules.extract_patches.output.patches, period=PERIODS)


def shards(split, scenario="{scenario}"):
    """The shard folder of a split (of the job's scenario unless one is given)."""
    return expand(rules.make_shards.output.shards, scenario=scenario, split=split)[0]


def map_inputs(wildcards):
    """A map's inputs: the period's raw file(s), the train stats, the model (learned methods) or the
    train shards (oi, oi_eo fit on them), the map scenario's Argo files (mode argo)."""
    scenario = MAPS["scenario"]
    inputs = {
        key: expand(path, period=wildcards.period)[0]
        for key, path in rules.retrieve.output.items()
    }
    inputs["stats"] = rules.gather_patches.output.stats
    if wildcards.method in LEARNED:
        inputs["checkpoint"] = expand(
            rules.train_model.output.checkpoint,
            scenario=scenario,
            learned=wildcards.method,
        )[0]
        if wildcards.method in config["sample"]["inflation_methods"]:
            inputs["inflation"] = expand(
                rules.calibrate_ensemble.output.inflation,
                scenario=scenario,
                learned=wildcards.method,
            )[0]
    elif wildcards.method != "idw":
        inputs["train"] = shards("train", scenario)
    argo = argo_files(SimpleNamespace(scenario=scenario))
    if argo:
        inputs["argo"] = argo
    return inputs


def map_periods():
    """maps.periods, or the periods of the test split's patches (read from the index, a checkpoint)."""
    if MAPS["periods"]:
        return MAPS["periods"]
    from depthdif.data.index import split_periods

    return split_periods(checkpoints.gather_patches.get().output.index, "test", PERIODS)


def learned_methods():
    return [m for m in LEARNED if m in METHODS]


def samples_file(scenario, method):
    """The samples netCDF of a method: a trained model's (sample_model) or a baseline's."""
    if method in LEARNED:
        return expand(
            rules.sample_model.output.samples, scenario=scenario, learned=method
        )[0]
    return expand(
        rules.run_baseline.output.samples, scenario=scenario, baseline=method
    )[0]


def samples_of(scenario):
    return {m: samples_file(scenario, m) for m in METHODS}


def training_curves_inputs():
    return {
        f"{s}_{m}": expand(rules.train_model.output.metrics, scenario=s, learned=m)[0]
        for s in SCENARIOS
        for m in learned_methods()
    }


# --- targets ---


def data_targets():
    return [
        rules.gather_patches.output.index,
        rules.gather_patches.output.stats,
        *expand(rules.make_shards.output.shards, scenario=SCENARIOS, split=SPLITS),
    ]


def train_targets():
    return expand(
        rules.train_model.output.checkpoint,
        scenario=SCENARIOS,
        learned=learned_methods(),
    )


def sample_targets():
    return [samples_file(s, m) for s in SCENARIOS for m in METHODS]


def evaluate_targets():
    """The summary; with leave-floats-out scenarios the holdout scores too."""
    targets = [rules.summarize.output.summary]
    if HOLDOUT:
        targets += [
            rules.summarize_holdout.output.table,
            rules.summarize_holdout.output.markdown,
        ]
    return targets


def figure_targets():
    """The figure rules' outputs (training curves only with a learned method, the
    ambient walkthrough only with ambient)."""
    figures = [
        *expand(rules.plot_dataset.output.figure, scenario=SCENARIOS),
        *expand(rules.plot_reconstruction.output.figure, scenario=SCENARIOS),
        *rules.plot_metrics.output,
        *rules.plot_ensembles.output,
    ]
    if learned_methods():
        figures += rules.plot_training_curves.output
    if "ambient" in METHODS:
        figures += rules.plot_ambient_walkthrough.output
    return figures


def map_targets(wildcards):
    """Every map of maps.methods × the map periods, and its figure."""
    periods = map_periods()
    return [
        *expand(rules.map_region.output.nc, method=MAPS["methods"], period=periods),
        *expand(rules.plot_map.output.figure, method=MAPS["methods"], period=periods),
    ]


def all_targets():
    return evaluate_targets() + figure_targets()


# --- credentials: checked once before any job runs (never during a dry run) ---


def check_retrieval_credentials():
    """Stop before any job when Copernicus files are missing and nobody is logged in."""
    if SOURCE != "copernicus":
        return
    missing = [
        p
        for p in PERIODS
        if not Path(expand(rules.retrieve.output.thetao, period=p)[0]).exists()
    ]
    if missing:
        from depthdif.data.copernicus import check_credentials

        check_credentials(config["data"])
