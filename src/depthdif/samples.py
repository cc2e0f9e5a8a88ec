"""The samples netCDF: every method (learned or baseline) writes it, evaluation reads only it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from depthdif.io import atomic_output
from depthdif.shards import Holdout

#: global attribute: "gaussian" when thetao_std is the std of a Gaussian predictive distribution
#: N(thetao_pred, thetao_std^2) (oi, oi_eo), scored with the closed-form Gaussian CRPS
PREDICTIVE_ATTR = "predictive"
#: global attribute: the test shards' manifest "holdout" entry as JSON (counts), without the platform lists
#: (thousands of floats would outgrow a netCDF attribute): the withheld ones are the variable holdout_platform
HOLDOUT_ATTR = "holdout_info"


def write_samples(
    path: str | os.PathLike[str],
    *,
    pred: np.ndarray,
    truth: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    land: np.ndarray,
    depth: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    patch_id: np.ndarray,
    std: np.ndarray | None = None,
    members: np.ndarray | None = None,
    observed_rmse: np.ndarray | None = None,
    attrs: Mapping[str, Any] | None = None,
    std_long_name: str | None = None,
    holdout: Holdout | None = None,
) -> None:
    """Write CF netCDF reconstructions in degC.

    Shapes: pred/truth/observed/valid/std (N,C,H,W); members (N,K,C,H,W); land (N,H,W);
    depth (C,); lat (N,H); lon (N,W); time (N,) seconds since epoch; patch_id (N,);
    observed_rmse (N,C): the model's own (unclamped) RMSE at the observations, if it clamps;
    `holdout`: the withheld floats' observations of the shards (`depthdif.shards.load_holdout`), written as
    holdout (degC), holdout_valid, holdout_float and the attribute holdout_info (leave-floats-out validation).
    Predictions and truth become NaN where not `valid`. `std_long_name` describes `std` when it is
    not an ensemble std (e.g. a Gaussian predictive std).
    """
    valid_b = valid.astype(bool)
    nan_where_invalid = lambda a: np.where(valid_b, a, np.nan).astype(np.float32)  # noqa: E731
    dims = ("patch", "depth", "y", "x")
    std = np.zeros_like(pred) if std is None else std
    data_vars: dict[str, Any] = {
        "thetao_pred": (
            dims,
            nan_where_invalid(pred),
            _units("degC", "reconstructed sea water potential temperature (ensemble mean)"),
        ),
        "thetao_std": (dims, nan_where_invalid(std), _units("degC", std_long_name or "ensemble standard deviation")),
        "thetao_true": (dims, nan_where_invalid(truth), _units("degC", "true sea water potential temperature")),
        "observed": (dims, observed.astype(np.int8), _units("1", "observation mask A (1 = observed)")),
        "valid": (dims, valid.astype(np.int8), _units("1", "ocean at this depth (1 = valid)")),
        "land": (("patch", "y", "x"), land.astype(np.int8), _units("1", "surface land (1 = land)")),
    }
    if observed_rmse is not None:
        data_vars["observed_rmse"] = (
            ("patch", "depth"), np.asarray(observed_rmse, np.float32),
            _units("degC", "RMSE of the unclamped prediction at the observed pixels"),
        )
    if members is not None:
        data_vars["thetao_members"] = (
            ("patch", "member", "depth", "y", "x"),
            np.where(valid_b[:, None], members, np.nan).astype(np.float32),
            _units("degC", "ensemble members"),
        )
    extra_attrs: dict[str, Any] = {}
    if holdout is not None:
        data_vars.update(_holdout_vars(holdout, dims))
        counts = {k: v for k, v in holdout.info.items() if k not in ("platforms_withheld", "platforms_kept")}
        extra_attrs[HOLDOUT_ATTR] = json.dumps(counts, sort_keys=True)
    n_members = 1 if members is None else members.shape[1]
    ds = xr.Dataset(
        data_vars,
        coords={
            "depth": (
                "depth", np.asarray(depth, np.float32), {"units": "m", "positive": "down", "standard_name": "depth"}
            ),
            "latitude": (
                ("patch", "y"), np.asarray(lat, np.float32), {"units": "degrees_north", "standard_name": "latitude"}
            ),
            "longitude": (
                ("patch", "x"), np.asarray(lon, np.float32), {"units": "degrees_east", "standard_name": "longitude"}
            ),
            "time": ("patch", np.asarray(time, "int64").astype("datetime64[s]").astype("datetime64[ns]")),
            "patch_id": ("patch", np.asarray(patch_id).astype(str)),
        },
        attrs={"Conventions": "CF-1.8", "n_members": n_members, **dict(attrs or {}), **extra_attrs},
    )
    ds["thetao_pred"].attrs["standard_name"] = "sea_water_potential_temperature"
    ds["thetao_true"].attrs["standard_name"] = "sea_water_potential_temperature"
    encoding = {name: {"zlib": True, "complevel": 1} for name in ds.data_vars}
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def _holdout_vars(holdout: Holdout, dims: tuple[str, ...]) -> dict[str, Any]:
    return {
        "holdout": (dims, np.where(holdout.valid, holdout.values, np.nan).astype(np.float32),
                    _units("degC", "potential temperature of the withheld floats (leave-floats-out validation)")),
        "holdout_valid": (dims, holdout.valid.astype(np.int8),
                          _units("1", "withheld observation to score (1 = yes)")),
        "holdout_float": (dims, np.where(holdout.valid, holdout.float_id, -1).astype(np.int32),
                          _units("1", "withheld float: index into holdout_platform, -1 = none")),
        "holdout_platform": ("withheld_float", np.asarray(holdout.info.get("platforms_withheld", []), str),
                             {"long_name": "platform number of each withheld float"}),
    }


def read_holdout(ds: xr.Dataset) -> Holdout | None:
    """The withheld observations a samples file carries (None when it has none)."""
    if "holdout" not in ds:
        return None
    dims = ("patch", "depth", "y", "x")
    valid = ds["holdout_valid"].transpose(*dims).values.astype(bool)
    return Holdout(
        values=np.where(valid, ds["holdout"].transpose(*dims).values.astype(np.float64), np.nan),
        valid=valid,
        float_id=np.where(valid, ds["holdout_float"].transpose(*dims).values, -1).astype(np.int32),
        info={**json.loads(ds.attrs.get(HOLDOUT_ATTR, "{}")),
              "platforms_withheld": [str(p) for p in ds["holdout_platform"].values]},
    )


def _units(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


def open_samples(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a samples netCDF fully into memory (the file is closed afterwards)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
