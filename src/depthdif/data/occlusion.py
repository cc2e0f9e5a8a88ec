"""Occlusion shards of one scenario and split, built from the period patch files.

Rows of the split in index.parquet (sorted by patch_id), patch arrays from the period npz
files, the train statistics of stats.json and the observations: the scenario's observation
mask over the truth (`depthdif.masks.make_mask`), or for mode argo_profiles real Argo profiles
binned on each patch (`depthdif.data.profiles`); written in the shard format of `depthdif.shards`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.data.argo import argo_profiles, read_argo_tracks
from depthdif.data.holdout import holdout_platforms
from depthdif.data.periods import is_index_period
from depthdif.data.profiles import (
    SALINITY_FALLBACK,
    SURFACE_WITHIN_M,
    ProfileLevels,
    grid_observations,
    in_month,
    profile_cells,
    profiles_on_levels,
)
from depthdif.errors import ConfigError, DataError, NoPatchesError
from depthdif.io import atomic_output, read_json
from depthdif.masks import make_mask
from depthdif.shards import ShardWriter, manifest_head, normalise

log = logging.getLogger(__name__)

#: the mode whose x and A come from real Argo profiles instead of the truth
ARGO_PROFILES = "argo_profiles"


def _load_period(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read patch file {path} ({exc}); rerun rule extract_patches") from exc


def _read_split_rows(index_path: Path, split: str) -> pd.DataFrame:
    try:
        index = pd.read_parquet(index_path, columns=["patch_id", "period", "split"])
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"cannot read patch index {index_path} ({exc}); rerun rule gather_patches") from exc
    rows = index[index["split"] == split].sort_values("patch_id", kind="stable").reset_index(drop=True)
    if rows.empty:
        counts = index["split"].value_counts().to_dict()
        raise NoPatchesError(
            f"no patch of split {split!r} in {index_path} (patches per split: {counts}); "
            "raise patches.split.fractions." + split + ", lower patches.split.block_px, or enlarge data.region"
        )
    return rows


def observation_mask(observed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A = observed & valid, per depth level: `observed` (n,C,H,W) is a per-level mask (a profile
    covers only the levels it measured); (n,H,W) is shared by the column and broadcast."""
    per_level = observed if observed.ndim == valid.ndim else observed[:, None]
    return per_level & valid


def _normalise_period(
    data: dict[str, np.ndarray],
    sel: np.ndarray,
    stats: Mapping[str, Any],
    path: Path,
) -> dict[str, np.ndarray]:
    """Contract arrays but x, x_valid for patches `sel` of one period file: y_n = (y-mean)/std (0 invalid)."""
    y = data["y"][sel].astype(np.float32)
    valid = np.isfinite(y)
    y_n = np.where(valid, normalise(y, stats, 1), 0.0).astype(np.float32)
    out = {
        "y": y_n, "y_valid": valid, "land": ~valid[:, 0], "lat": data["lat"][sel], "lon": data["lon"][sel],
        "time": data["time"][sel], "patch_id": data["patch_id"][sel],
    }
    if "eo" in data:
        if stats.get("eo_mean") is None or not stats.get("eo_std"):
            raise DataError(f"{path} has an eo array but stats.json has no eo_mean/eo_std; rerun rule gather_patches")
        eo = data["eo"][sel].astype(np.float32)
        ok = np.isfinite(eo) & valid[:, :1]
        eo_n = (eo - np.float32(stats["eo_mean"])) / np.float32(stats["eo_std"])
        out["eo"] = np.where(ok, eo_n, 0.0).astype(np.float32)
    return out


def _masked_truth(chunk: dict[str, np.ndarray], observed: np.ndarray) -> dict[str, np.ndarray]:
    """x = A * y_n with A = `observation_mask(observed, y_valid)` (a mask over the truth)."""
    a = observation_mask(observed, chunk["y_valid"])
    return {**chunk, "x": np.where(a, chunk["y"], 0.0).astype(np.float32), "x_valid": a}


@dataclass
class _Binned:
    """The Argo observations of one period's patches: the kept floats' and, with holdout_floats > 0,
    the withheld floats' (leave-floats-out validation), binned separately."""

    obs: np.ndarray  # (n,C,H,W) degC: mean of the kept profiles per cell and level, NaN without one
    count: np.ndarray  # (n,C,H,W) kept profiles per cell and level
    held: np.ndarray | None = None  # (n,C,H,W) degC: mean of the withheld profiles, NaN without one
    held_float: np.ndarray | None = None  # (n,C,H,W) int32: a withheld float of the cell, -1 without one
    #: per patch: (indices of its withheld profiles in `_ArgoObservations.profiles`, their cell rows, columns)
    held_cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass
class _Holdout:
    """Leave-floats-out bookkeeping of one split: the withheld floats and what of them reaches the shards."""

    withheld: np.ndarray  # sorted platform ids; a cell's holdout_float indexes this
    kept: list[str]
    share: float
    seed: int
    profiles: int = 0  # withheld profiles read (observing a level)
    in_patches: set[int] = field(default_factory=set)  # withheld profiles inside a patch of the shards
    scored: list[set[int]] = field(default_factory=list)  # per level: withheld profiles with a holdout cell
    cells: np.ndarray | None = None  # (C,) holdout cells
    shared: np.ndarray | None = None  # (C,) cells also observed by a kept float (kept in x, not scored)
    outside_valid: np.ndarray | None = None  # (C,) withheld cells where the truth is invalid

    def start(self, channels: int) -> None:
        self.scored = [set() for _ in range(channels)]
        self.cells, self.shared, self.outside_valid = (np.zeros(channels, np.int64) for _ in range(3))

    def manifest(self, platforms: np.ndarray) -> dict[str, Any]:
        assert self.cells is not None and self.shared is not None and self.outside_valid is not None
        scored = set().union(*self.scored) if self.scored else set()
        return {
            "share": self.share, "seed": self.seed,
            "platforms_withheld": [str(p) for p in self.withheld], "platforms_kept": self.kept,
            "floats_withheld": len(self.withheld), "floats_kept": len(self.kept),
            "profiles_withheld": self.profiles, "profiles_withheld_in_patches": len(self.in_patches),
            "profiles_scored": [len(s) for s in self.scored], "profiles_scored_any": len(scored),
            "floats_scored": len({str(platforms[i]) for i in scored}),
            "cells": [int(x) for x in self.cells], "cells_shared_with_kept": [int(x) for x in self.shared],
            "cells_outside_valid": [int(x) for x in self.outside_valid],
        }


@dataclass
class _ArgoObservations:
    """Argo profiles on the depth levels, binned patch by patch; running totals for the manifest."""

    scenario: str
    cfg: Mapping[str, Any]
    frame: pd.DataFrame  # argo_profiles long form, read once
    profiles: ProfileLevels | None = None  # once the depth levels are known
    month: str | None = None
    of_month: ProfileLevels | None = None  # the profiles of `month`
    month_index: np.ndarray | None = None  # their indices in `profiles`
    month_held: np.ndarray | None = None  # (len(of_month),) bool: of a withheld float
    month_split: tuple[ProfileLevels, ProfileLevels] | None = None  # of_month's (kept, withheld) profiles
    months: dict[str, int] = field(default_factory=dict)  # month -> profiles of that month
    inside: set[int] = field(default_factory=set)  # profiles inside some patch of the split
    dropped: int = 0
    sums: np.ndarray | None = None  # (3, C): n, Σd, Σd² of d = obs - truth (degC) at A
    outside_valid: np.ndarray | None = None  # (C,) profile-cell observations where the truth is invalid
    holdout: _Holdout | None = None  # with holdout_floats > 0

    @classmethod
    def read(cls, scenario: str, cfg: Mapping[str, Any]) -> _ArgoObservations:
        if not cfg.get("argo_paths"):
            raise ConfigError(f"scenario {scenario!r} has mode {ARGO_PROFILES} but scenarios.{scenario}.argo_paths "
                              "is empty; point it at GDAC *_prof.nc files")
        frame = argo_profiles(cfg["argo_paths"])
        if frame.empty:
            raise DataError(f"scenarios.{scenario}.argo_paths={cfg['argo_paths']!r} has no profile with good "
                            "position/time/temperature QC")
        return cls(scenario, cfg, frame)

    @property
    def min_observed(self) -> int:
        return int(self.cfg.get("min_observed_pixels", 1))

    def _on_levels(self, depth: np.ndarray) -> ProfileLevels:
        if self.profiles is None:
            self.profiles = profiles_on_levels(
                self.frame, depth, surface_within_m=float(self.cfg.get("surface_within_m", SURFACE_WITHIN_M)),
                salinity_fallback=float(self.cfg.get("salinity_fallback", SALINITY_FALLBACK)),
            )
            self.frame = self.frame.iloc[:0]  # the long form is no longer needed: free it
            self.sums = np.zeros((3, len(depth)))
            self.outside_valid = np.zeros(len(depth), np.int64)
            log.info("scenario %s: %d Argo profiles observe a depth level; SP source of their levels: %s",
                     self.scenario, len(self.profiles), self.profiles.salinity)
            self._choose_holdout(self.profiles, len(depth))
        return self.profiles

    def _choose_holdout(self, profiles: ProfileLevels, channels: int) -> None:
        """The withheld floats among those observing a level (the same in every split: see data/holdout.py)."""
        share, seed = float(self.cfg.get("holdout_floats", 0.0)), int(self.cfg.get("holdout_seed", 0))
        withheld = holdout_platforms(profiles.platform, share, seed,
                                     where=f"scenarios.{self.scenario}.holdout_floats")
        if not withheld:
            return
        kept = sorted(set(map(str, profiles.platform)) - withheld)
        self.holdout = _Holdout(np.array(sorted(withheld)), kept, share, seed)
        self.holdout.profiles = int(np.isin(profiles.platform, self.holdout.withheld).sum())
        self.holdout.start(channels)
        log.info("scenario %s: leave-floats-out validation withholds %d of %d floats (%d profiles): %s",
                 self.scenario, len(withheld), len(withheld) + len(kept), self.holdout.profiles,
                 sorted(withheld)[:10])

    def _select_month(self, profiles: ProfileLevels, month: str) -> ProfileLevels:
        if month != self.month:
            keep = in_month(profiles.time, month)
            self.month, self.of_month, self.month_index = month, profiles.subset(keep), np.flatnonzero(keep)
            self.months[month] = int(keep.sum())
            held = self.holdout.withheld if self.holdout is not None else np.array([], str)
            self.month_held = np.isin(self.of_month.platform, held)
            self.month_split = (self.of_month.subset(~self.month_held), self.of_month.subset(self.month_held))
        assert self.of_month is not None
        return self.of_month

    def observe(self, data: dict[str, np.ndarray], sel: np.ndarray, period: str, path: Path) -> _Binned:
        """The observations of the patches `sel`, each from the profiles of its month (the withheld
        floats' apart)."""
        if is_index_period(period):
            raise DataError(f"{path}: period {period!r} is a time index, not a month, so mode {ARGO_PROFILES} "
                            f"(scenario {self.scenario!r}) cannot match Argo profiles to it; use monthly "
                            "data.periods ('YYYY-MM') with a datetime time axis")
        profiles = self._on_levels(data["depth"])
        obs, count, held, held_float, held_cells = [], [], [], [], []
        for i in sel:
            # the patch's own time picks the month: a May 2016 profile observes the May 2016 field
            month = str(np.datetime64(int(data["time"][i]), "s").astype("datetime64[M]"))
            of_month = self._select_month(profiles, month)
            assert self.month_index is not None and self.month_held is not None and self.month_split is not None
            lat, lon = data["lat"][i], data["lon"][i]
            rows, cols = profile_cells(of_month, month, lat, lon)
            self.inside.update(self.month_index[rows >= 0].tolist())
            kept_profiles, held_profiles = self.month_split
            o, c = grid_observations(kept_profiles, month, lat, lon)
            obs.append(o)
            count.append(c)
            if self.holdout is not None:
                h, _ = grid_observations(held_profiles, month, lat, lon)
                held.append(h)
                inside = self.month_held & (rows >= 0)
                index = self.month_index[inside]
                held_float.append(self._float_cells(index, rows[inside], cols[inside], h.shape))
                held_cells.append((index, rows[inside], cols[inside]))
        binned = _Binned(np.stack(obs), np.stack(count))
        if self.holdout is not None:
            binned.held, binned.held_float, binned.held_cells = np.stack(held), np.stack(held_float), held_cells
        return binned

    def _float_cells(self, index: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, ...]
                     ) -> np.ndarray:
        """(C,H,W) int32: per cell and level the withheld float observing it (index into the sorted withheld
        platforms; the first of them where several do, which is rare), -1 elsewhere."""
        assert self.profiles is not None and self.holdout is not None
        ids = np.searchsorted(self.holdout.withheld, self.profiles.platform[index])
        out = np.full(shape, np.iinfo(np.int32).max, np.int64)
        p, c = np.nonzero(np.isfinite(self.profiles.theta[index]))
        np.minimum.at(out, (c, rows[p], cols[p]), ids[p])
        return np.where(out == np.iinfo(np.int32).max, -1, out).astype(np.int32)

    def chunk(self, chunk: dict[str, np.ndarray], binned: _Binned, y_degc: np.ndarray,
              stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """x = normalised observations of the kept floats, A = observed & y_valid, obs_count; patches below
        min_observed_pixels (kept observations) dropped; with a holdout: holdout, holdout_valid, holdout_float."""
        assert self.sums is not None and self.outside_valid is not None
        valid = chunk["y_valid"]
        obs, count = binned.obs, binned.count
        a = np.isfinite(obs) & valid
        keep = a.any(axis=1).sum(axis=(1, 2)) >= self.min_observed
        self.dropped += int((~keep).sum())
        a, obs, count, y_degc, valid = a[keep], obs[keep], count[keep], y_degc[keep], valid[keep]
        self.outside_valid += (count * ~valid).sum(axis=(0, 2, 3))
        d = np.where(a, obs - y_degc, 0.0)
        self.sums += np.stack([a.sum(axis=(0, 2, 3)), d.sum(axis=(0, 2, 3)), (d * d).sum(axis=(0, 2, 3))])
        x = np.where(a, normalise(np.where(a, obs, 0.0), stats, 1), 0.0).astype(np.float32)
        kept = {k: v[keep] for k, v in chunk.items()}
        out = {**kept, "x": x, "x_valid": a, "obs_count": np.where(a, count, 0)}
        if self.holdout is not None:
            out.update(self._holdout_arrays(binned, keep, np.isfinite(obs), valid, stats))
        return out

    def _holdout_arrays(self, binned: _Binned, keep: np.ndarray, kept_obs: np.ndarray, valid: np.ndarray,
                        stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """holdout (normalised like y, 0 elsewhere), holdout_valid, holdout_float of the kept patches.

        A cell and level a kept float observes stays in x and is not scored (its withheld value would be
        scored against a reconstruction that was given a value at that very cell); the truth must be valid.
        """
        hold = self.holdout
        assert hold is not None and binned.held is not None and binned.held_float is not None
        assert hold.cells is not None and hold.shared is not None and hold.outside_valid is not None
        held, held_float = binned.held[keep], binned.held_float[keep]
        seen = np.isfinite(held)
        hv = seen & valid & ~kept_obs
        hold.shared += (seen & valid & kept_obs).sum(axis=(0, 2, 3))
        hold.outside_valid += (seen & ~valid).sum(axis=(0, 2, 3))
        hold.cells += hv.sum(axis=(0, 2, 3))
        assert self.profiles is not None
        for patch, (index, rows, cols) in enumerate(c for c, ok in zip(binned.held_cells, keep) if ok):
            hold.in_patches.update(index.tolist())
            scored = np.isfinite(self.profiles.theta[index]) & hv[patch][:, rows, cols].T  # (P, C)
            for c in range(scored.shape[1]):
                hold.scored[c].update(index[scored[:, c]].tolist())
        values = np.where(hv, normalise(np.where(hv, held, 0.0), stats, 1), 0.0).astype(np.float32)
        return {"holdout": values, "holdout_valid": hv, "holdout_float": np.where(hv, held_float, -1)}

    def manifest(self, depth: Sequence[float]) -> dict[str, Any]:
        """obs_minus_truth per level (degC at A; std with ddof 0; None where n = 0), the profile counts and,
        with a holdout, the withheld floats and what of them the shards hold (`holdout`)."""
        assert self.sums is not None and self.outside_valid is not None and self.profiles is not None
        n, total, squares = self.sums
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / n
            std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        stat = {
            "depth": [float(x) for x in depth], "n": [int(x) for x in n],
            "mean": [float(x) if k > 0 else None for x, k in zip(mean, n)],
            "std": [float(x) if k > 0 else None for x, k in zip(std, n)],
        }
        summary = {
            "profiles_read": len(self.profiles), "profiles_in_months": sum(self.months.values()),
            "profiles_in_patches": len(self.inside), "patches_dropped": self.dropped,
            "min_observed_pixels": self.min_observed, "salinity_levels": dict(self.profiles.salinity),
            "observations_outside_valid": [int(x) for x in self.outside_valid],
        }
        out = {"obs_minus_truth": stat, "argo_profiles": summary}
        if self.holdout is not None:
            out["holdout"] = self.holdout.manifest(self.profiles.platform)
        return out

    def no_patches(self, split: str, n_rows: int) -> NoPatchesError:
        months = sorted(self.months)
        read = len(self.profiles) if self.profiles is not None else 0
        return NoPatchesError(
            f"scenario {self.scenario!r}, split {split!r}: none of its {n_rows} patches has >= {self.min_observed} "
            f"cells observed by Argo profiles (scenarios.{self.scenario}.min_observed_pixels); of the {read} "
            f"profiles read from scenarios.{self.scenario}.argo_paths, {sum(self.months.values())} fall in the "
            f"split's months {months[:3]}{'...' if len(months) > 3 else ''} and {len(self.inside)} inside its "
            "patches. Add Argo files of data.region and data.periods to argo_paths, lower min_observed_pixels, "
            "or enlarge data.region / data.periods"
        )


def write_split_shards(
    index_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str],
    patch_files: Sequence[str | os.PathLike[str]],
    scenario: str,
    scenario_cfg: Mapping[str, Any],
    split: str,
    shard_size: int,
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Occlusion shards of one split and scenario, streamed period file by period file.

    Rows of `split` in index.parquet, sorted by patch_id; patch arrays from the period npz
    whose file stem is the row's `period`; y normalised with stats.json. The mask modes:
    ocean = isfinite(y[:, 0]); observed from `depthdif.masks.make_mask(scenario_cfg["mode"], ...)`
    ((H,W): the whole valid column, or (C,H,W) per level); A = `observation_mask(observed, y_valid)`;
    x = A * y_n. Mode argo_profiles: the Argo profiles (read once)
    of each patch's month binned on its grid (`depthdif.data.profiles`); A = observed & y_valid
    per level, x = the normalised observations (not the truth), obs_count = profiles per cell and
    level at A; patches with fewer than min_observed_pixels cells observed at some level are left
    out; the manifest records obs - truth per level (degC) at A (`obs_minus_truth`). With
    holdout_floats > 0 the withheld floats (`depthdif.data.holdout.holdout_platforms`) are binned apart
    into holdout / holdout_valid / holdout_float, never into x (docs/architecture.md, "Leave-floats-out
    validation"); the manifest's `holdout` records them.
    Returns a summary (n, n_shards, observed/hidden fraction).
    """
    index_path, stats_path = Path(index_path), Path(stats_path)
    rows = _read_split_rows(index_path, split)
    files = {Path(p).stem: Path(p) for p in patch_files}
    missing = sorted(set(rows["period"]) - set(files))
    if missing:
        raise DataError(f"index {index_path} has {split} patches of periods {missing[:5]} but no patch file for them")
    if not stats_path.is_file():
        raise DataError(f"normalisation stats {stats_path} not found; rerun rule gather_patches")
    stats = read_json(stats_path)
    if any(s <= 0 for s in stats["std"]):
        raise DataError(f"{stats_path} has a non-positive std {stats['std']}; check the train patches")
    mode, seed = scenario_cfg["mode"], int(scenario_cfg.get("seed", 0))
    argo = _ArgoObservations.read(scenario, scenario_cfg) if mode == ARGO_PROFILES else None
    fraction = float(scenario_cfg["fraction"]) if argo is None else float("nan")
    tracks = None
    if mode == "argo":
        if not scenario_cfg.get("argo_paths"):
            raise ConfigError(f"scenario {scenario!r} has mode argo but scenarios.{scenario}.argo_paths is empty; "
                            "point it at GDAC *_prof.nc files")
        tracks = read_argo_tracks(scenario_cfg["argo_paths"])
        if tracks.empty:
            raise DataError(f"scenarios.{scenario}.argo_paths={scenario_cfg['argo_paths']!r} has no profile with "
                            "good position/time/temperature QC")

    depth: list[float] | None = None
    with atomic_output(out_dir) as tmp:
        writer = ShardWriter(tmp, shard_size)
        # consecutive runs of one period: each period file is loaded once, in patch_id order
        runs = (rows["period"] != rows["period"].shift()).cumsum()
        for _, run in rows.groupby(runs, sort=False):
            period = run["period"].iloc[0]
            path = files[period]
            data = _load_period(path)
            if len(stats["mean"]) != data["y"].shape[1]:
                raise DataError(f"{path} has {data['y'].shape[1]} depth channels but {stats_path} has "
                                f"{len(stats['mean'])}; rerun rules extract_patches and gather_patches")
            depth = depth or [float(d) for d in data["depth"]]
            where = pd.Series(np.arange(len(data["patch_id"])), index=data["patch_id"].astype(str))
            absent = sorted(set(run["patch_id"]) - set(where.index))
            if absent:
                raise DataError(f"{path} lacks patches {absent[:3]} listed in {index_path}; "
                                "rerun rules extract_patches and gather_patches")
            sel = where.loc[run["patch_id"]].to_numpy()
            chunk = _normalise_period(data, sel, stats, path)
            if argo is not None:
                binned = argo.observe(data, sel, period, path)
                chunk = argo.chunk(chunk, binned, data["y"][sel].astype(np.float64), stats)
            else:
                observed = np.stack([
                    make_mask(mode, np.isfinite(data["y"][i, 0]), fraction, seed, str(data["patch_id"][i]),
                              dict(scenario_cfg), lat=data["lat"][i], lon=data["lon"][i], time=data["time"][i],
                              argo_tracks=tracks)
                    for i in sel
                ])
                chunk = _masked_truth(chunk, observed)
            try:
                writer.add(chunk)
            except ValueError as exc:
                raise DataError(
                    f"{path} does not match the earlier patch files: {exc}; rerun rule extract_patches"
                ) from exc
            del data, chunk
        extra: dict[str, Any] = {}
        if argo is not None:
            if writer.n == 0:
                raise argo.no_patches(split, len(rows))
            extra = argo.manifest(depth or [])
            log.info("scenario %s, split %s: %s; obs - truth (degC) per level: %s",
                     scenario, split, extra["argo_profiles"], extra["obs_minus_truth"])
        manifest = writer.finish(**manifest_head(scenario, split, stats, depth or [], scenario_cfg), **extra)
    return {
        "scenario": scenario, "split": split, "n": manifest["n"], "n_shards": len(manifest["shards"]),
        "observed_fraction": manifest["observed_fraction"], "hidden_fraction": manifest["hidden_fraction"],
        "out_dir": str(out_dir), **extra,
    }
