"""Retrieval entry point: one raw period file (and its EO file) from the configured source."""

from __future__ import annotations

import os
from typing import Any

from depthdif.errors import ConfigError


def retrieve_period(
    period: str,
    data_cfg: dict[str, Any],
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``resources/raw/{source}/{period}.nc`` (+ the EO file when `eo_path`).

    Dispatches on ``data.source``: synthetic | netcdf | copernicus. `eo_path` is given
    only when ``data.eo == "ostia"``.
    """
    source = data_cfg["source"]
    if data_cfg.get("eo") == "ostia" and eo_path is None:
        raise ConfigError("data.eo is 'ostia' but no EO output path was given to retrieve_period.")
    if source == "synthetic":
        from depthdif.data.synthetic import write_synthetic_period as write
    elif source == "netcdf":
        from depthdif.data.netcdf import write_netcdf_period as write
    elif source == "copernicus":
        from depthdif.data.copernicus import retrieve_period as write
    else:
        raise ConfigError(
            f"config key 'data.source': {source!r} is not one of synthetic, netcdf, copernicus."
        )
    write(period, data_cfg, thetao_path, eo_path)
