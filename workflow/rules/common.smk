# Helpers and input functions only (no rules): config validation, wildcard values,
# per-rule config sub-trees (params) and target lists.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from depthdif import params as rule_params  # noqa: E402
from depthdif.config import validate_config  # noqa: E402
from depthdif.data.periods import list_periods  # noqa: E402
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
SPLITS = ["train", "val", "test"]
OBJECTIVES = ["standard", "ambient"]
LEARNED = ["unet", "standard", "ambient"]
BASELINES = ["idw", "oi"]
METHODS = list(config["evaluate"]["methods"])
WITH_EO = config["data"]["eo"] == "ostia"


wildcard_constraints:
    period=r"[0-9]{4}-[0-9]{2}|t[0-9]{4}",
    scenario="|".join(SCENARIOS),
    split="train|val|test",
    objective="standard|ambient|unet",
    learned="standard|ambient|unet",
    baseline="idw|oi",
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
    return config["scenarios"][wildcards.scenario]


def train_params(wildcards):
    """model, objective and train keys of one objective (no diffusion key for the unet)."""
    return rule_params.train_params(config, wildcards.objective)


def sample_params(wildcards):
    """Sampler keys of a diffusion method; the deterministic unet uses none."""
    return rule_params.sample_params(config, wildcards.learned)


def baseline_params(wildcards):
    return config["evaluate"][wildcards.baseline]


# --- the user's own files (inputs, with their content checksums) ---


def user_files(key):
    """The files of one config key and their checksum file ([] when the key is not used)."""
    if key not in USER_FILES:
        return []
    return [*USER_FILES[key], USER_CHECKSUMS[key]]


def source_files():
    """The netcdf source's files (data.netcdf.paths, and eo_paths with eo: ostia)."""
    return user_files("data.netcdf.paths") + user_files("data.netcdf.eo_paths")


def argo_files(wildcards):
    """An argo scenario's Argo files (scenarios.<name>.argo_paths)."""
    return user_files(f"scenarios.{wildcards.scenario}.argo_paths")


# --- paths ---


def raw_files(wildcards):
    files = {"thetao": f"resources/raw/{SOURCE}/{wildcards.period}.nc"}
    if WITH_EO:
        files["eo"] = f"resources/raw/{SOURCE}/eo/{wildcards.period}.nc"
    return files


def retrieve_outputs():
    outputs = {"thetao": f"resources/raw/{SOURCE}/{{period}}.nc"}
    if WITH_EO:
        outputs["eo"] = f"resources/raw/{SOURCE}/eo/{{period}}.nc"
    return outputs


def patch_files():
    return expand("results/patches/{period}.npz", period=PERIODS)


def training_curves_inputs():
    return {
        f"{s}_{o}": f"results/models/{s}/{o}/metrics.csv"
        for s in SCENARIOS
        for o in LEARNED
        if o in METHODS
    }


def samples_of(scenario):
    return {m: f"results/samples/{scenario}/{m}.nc" for m in METHODS}


# --- targets ---


def data_targets():
    return [
        "results/patches/index.parquet",
        "results/patches/stats.json",
        *expand("results/shards/{scenario}/{split}", scenario=SCENARIOS, split=SPLITS),
    ]


def train_targets():
    return expand(
        "results/models/{scenario}/{objective}/model.ckpt",
        scenario=SCENARIOS,
        objective=[m for m in LEARNED if m in METHODS],
    )


def sample_targets():
    return expand(
        "results/samples/{scenario}/{method}.nc", scenario=SCENARIOS, method=METHODS
    )


def evaluate_targets():
    return ["results/metrics/summary.csv"]


def figure_targets():
    per_scenario = expand(
        "results/figures/{name}_{scenario}.png",
        name=["dataset", "reconstruction"],
        scenario=SCENARIOS,
    )
    shared = [
        "results/figures/metrics_vs_fraction.png",
        "results/figures/rmse_by_depth.png",
        "results/figures/calibration.png",
        "results/figures/power_spectra.png",
    ]
    if any(m in METHODS for m in LEARNED):
        shared.append("results/figures/training_curves.png")
    if "ambient" in METHODS:
        shared.append("results/figures/ambient_walkthrough.png")
    return per_scenario + shared


def all_targets():
    return evaluate_targets() + figure_targets()


# --- credentials: checked once before any job runs (never during a dry run) ---


def check_retrieval_credentials():
    """Stop before any job when Copernicus files are missing and nobody is logged in."""
    if SOURCE != "copernicus":
        return
    missing = [
        p for p in PERIODS if not Path(f"resources/raw/{SOURCE}/{p}.nc").exists()
    ]
    if missing:
        from depthdif.data.copernicus import check_credentials

        check_credentials(config["data"])
