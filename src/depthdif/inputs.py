"""The user's own input files (netCDF, Argo) as tracked inputs of the workflow, by content.

Every file named by `data.netcdf.paths`, `data.netcdf.eo_paths` (netcdf source) and
`scenarios.<name>.argo_paths` (argo scenarios; not with argo_source argopy, whose file rule
retrieve_argo writes) is checked at every start (a glob that matches nothing stops the
workflow), and `resources/inputs/<key>.sha256` (in `sha256sum` format) is written for each such
key, rewritten only when a checksum or the file list changed. That file, not the files
themselves, is the input of the rules that read them: Snakemake compares modification times, so
with the files as inputs a copy that kept an older time (`cp -p`, `rsync -a`) of an edited file
would go unnoticed, and a touched or re-staged copy of an unchanged one would rerun everything.
Checksums are cached by (size, mtime, ctime, inode): a start re-reads only files whose status
changed.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthdif.errors import ConfigError
from depthdif.io import sha256_file
from depthdif.params import write_if_changed

INPUTS_DIR = "resources/inputs"
_CACHE = ".stat-cache.json"


def expand_user_files(spec: str | Sequence[str], key: str) -> list[str]:
    """Files named by a path, a glob or a list of them (relative to the working directory).

    Sorted within each glob, duplicates dropped. A glob matching nothing, a missing file or
    an empty list raise ConfigError naming `key`.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise ConfigError(f"config key '{key}': no file given; set a path, glob or list of them.")
    found: list[str] = []
    for item in items:
        pattern = os.path.expanduser(str(item))
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ConfigError(
                    f"config key '{key}': {item!r} matches no file (relative paths are read from "
                    f"the working directory {os.getcwd()}); fix the glob or the working directory."
                )
        else:
            matches = [pattern]
        for match in matches:
            if not Path(match).is_file():
                raise ConfigError(
                    f"config key '{key}': file {match!r} does not exist (working directory {os.getcwd()})."
                )
            if match not in found:
                found.append(match)
    return found


def user_file_sets(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """{config key: files} of every user file set the configured workflow reads."""
    sets: dict[str, list[str]] = {}
    data = config["data"]
    if data["source"] == "netcdf":
        sets["data.netcdf.paths"] = expand_user_files(data["netcdf"]["paths"], "data.netcdf.paths")
        if data["eo"] == "ostia":
            sets["data.netcdf.eo_paths"] = expand_user_files(data["netcdf"]["eo_paths"], "data.netcdf.eo_paths")
    for name, scenario in config["scenarios"].items():
        # both argo modes read Argo files in make_shards; with argo_source: argopy rule retrieve_argo writes them
        if scenario["mode"] in ("argo", "argo_profiles") and scenario.get("argo_source", "files") == "files":
            key = f"scenarios.{name}.argo_paths"
            sets[key] = expand_user_files(scenario["argo_paths"], key)
    return sets


def checksum_path(key: str, folder: str | os.PathLike[str] = INPUTS_DIR) -> str:
    return str(Path(folder) / f"{key}.sha256")


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def write_checksums(sets: Mapping[str, Sequence[str]], folder: str | os.PathLike[str] = INPUTS_DIR) -> dict[str, str]:
    """Write `<folder>/<key>.sha256` for every set (only when it changed); {key: path}.

    Nothing is written when there is no set (e.g. the synthetic source without Argo).
    """
    if not sets:
        return {}
    cache_file = Path(folder) / _CACHE
    try:
        cache: dict[str, Any] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    fresh: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, files in sets.items():
        lines = []
        for path in files:
            absolute = os.path.abspath(path)
            stat = _stat_key(path)
            entry = cache.get(absolute)
            digest = entry[1] if entry and entry[0] == stat else sha256_file(path)
            fresh[absolute] = [stat, digest]
            lines.append(f"{digest}  {path}\n")
        target = checksum_path(key, folder)
        write_if_changed(target, "".join(lines))
        written[key] = target
    write_if_changed(cache_file, json.dumps(fresh, sort_keys=True) + "\n")
    return written
