"""Copernicus source with copernicusmarine.subset monkeypatched (no network)."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import copernicusmarine
import numpy as np
import pytest
import xarray as xr

from data_helpers import sections
from depthdif.data import copernicus, synthetic
from depthdif.errors import CredentialsError

NORTH_SEA = {"lon_min": -13.0, "lon_max": 5.0, "lat_min": 47.0, "lat_max": 64.0}
TROPICS = {"lon_min": -10.0, "lon_max": 20.0, "lat_min": -4.0, "lat_max": 4.0}


def test_subset_kwargs(tmp_path) -> None:
    data, _ = sections({"source": "copernicus", "depth_levels": [50.0, 0.494, 318.0]})
    kw = copernicus.subset_kwargs("2016-02", data, "thetao", tmp_path, "x.nc")
    assert kw["dataset_id"] == "cmems_mod_glo_phy_my_0.083deg_P1M-m" and kw["variables"] == ["thetao"]
    assert (kw["minimum_depth"], kw["maximum_depth"]) == (0.494, 318.0)
    assert kw["start_datetime"] == "2016-02-01T00:00:00" and kw["end_datetime"] == "2016-02-29T23:59:59"
    assert (kw["minimum_longitude"], kw["maximum_longitude"]) == (-40.0, -8.0)
    assert (kw["minimum_latitude"], kw["maximum_latitude"]) == (24.0, 48.0)
    assert kw["output_directory"] == str(tmp_path) and kw["output_filename"] == "x.nc" and kw["overwrite"]
    eo = copernicus.subset_kwargs("2016-02", data, "eo", tmp_path, "sst.nc")
    assert eo["dataset_id"] == "METOFFICE-GLO-SST-L4-REP-OBS-SST" and eo["variables"] == ["analysed_sst"]
    assert "minimum_depth" not in eo
    accepted = set(inspect.signature(copernicusmarine.subset).parameters)
    for kwargs in (kw, eo):
        assert set(kwargs) <= accepted
        assert not {"username", "password"} & set(kwargs)
    by_index, _ = sections({"depth_levels": [0, 28], "depth_selection": "index"})
    kw = copernicus.subset_kwargs("2016-02", by_index, "thetao", tmp_path, "x.nc")
    assert kw["maximum_depth"] == pytest.approx(318.1274)


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    for name in ("COPERNICUSMARINE_SERVICE_USERNAME", "COPERNICUSMARINE_SERVICE_PASSWORD",
                 "COPERNICUS_MARINE_SERVICE_USERNAME", "COPERNICUS_MARINE_SERVICE_PASSWORD",
                 "COPERNICUSMARINE_CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_missing_credentials(no_login, monkeypatch) -> None:
    data, _ = sections({"source": "copernicus"})
    with pytest.raises(CredentialsError, match="copernicusmarine login.*COPERNICUSMARINE_SERVICE_USERNAME"):
        copernicus.check_credentials(data)
    file = no_login / ".copernicusmarine" / ".copernicusmarine-credentials"
    file.parent.mkdir()
    file.write_text("[credentials]\nusername=u\npassword=p\n")
    copernicus.check_credentials(data)  # the toolbox's default file is enough
    file.unlink()
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_USERNAME", "u")
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", "p")
    copernicus.check_credentials(data)
    monkeypatch.delenv("COPERNICUSMARINE_SERVICE_PASSWORD")
    data["copernicus"]["credentials_file"] = str(no_login / "missing.ini")
    with pytest.raises(CredentialsError, match="data.copernicus.credentials_file"):
        copernicus.check_credentials(data)


def _fake_subset(calls: list, thetao_src: Path, sst_src: Path):
    def subset(**kwargs):
        calls.append(kwargs)
        src = thetao_src if "minimum_depth" in kwargs else sst_src
        out = Path(kwargs["output_directory"]) / kwargs["output_filename"]
        shutil.copy(src, out)
        return None
    return subset


def test_retrieve_north_sea(real_data_dir, tmp_path, monkeypatch, no_login) -> None:
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_USERNAME", "user")
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", "secret-pw")
    calls: list = []
    real = real_data_dir / "cmems_glo12_so_surface_NorthSea_20250924.nc"
    monkeypatch.setattr(copernicusmarine, "subset", _fake_subset(calls, real, real))
    data, _ = sections({"source": "copernicus", "variable": "so", "depth_levels": [0.494],
                        "region": NORTH_SEA, "eo": "none"})
    out = tmp_path / "raw" / "2025-09.nc"
    copernicus.retrieve_period("2025-09", data, out, None)
    assert len(calls) == 1 and "secret-pw" not in repr(calls)
    with xr.open_dataset(out) as ds:
        t = ds["thetao"]
        assert t.shape == (1, 1, 205, 217) and t.dtype == np.float32 and t.attrs["units"] == "degC"
        assert float(t.isnull().mean()) == pytest.approx(0.228, abs=0.005)
        assert ds["time"].values[0] == np.datetime64("2025-09-01")
        with xr.open_dataset(real) as raw:  # monthly mean of the two daily steps
            np.testing.assert_allclose(t.values[0, 0], raw["so"].mean("time").values[0], rtol=1e-6)
    assert "secret-pw" not in out.read_bytes().decode("latin-1")
    assert list(out.parent.iterdir()) == [out]  # the temporary download folder is gone


def test_retrieve_with_ostia(real_data_dir, tmp_path, monkeypatch, no_login) -> None:
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_USERNAME", "user")
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", "secret-pw")
    data, _ = sections({"source": "copernicus", "region": TROPICS, "eo": "ostia",
                        "synthetic": {"resolution": 0.5},
                        "copernicus": {"eo_variable": "surface_temperature"}})
    fake_glorys = tmp_path / "glorys.nc"
    synthetic.write_synthetic_period("2007-03", data, fake_glorys)
    calls: list = []
    monkeypatch.setattr(copernicusmarine, "subset", _fake_subset(
        calls, fake_glorys, real_data_dir / "ostia_monthly_tropics_2006_2010.nc"))
    out, eo_out = tmp_path / "raw" / "2007-03.nc", tmp_path / "raw" / "eo" / "2007-03.nc"
    copernicus.retrieve_period("2007-03", data, out, eo_out)
    assert [c["dataset_id"] for c in calls] == ["cmems_mod_glo_phy_my_0.083deg_P1M-m",
                                                "METOFFICE-GLO-SST-L4-REP-OBS-SST"]
    with xr.open_dataset(out) as ds, xr.open_dataset(eo_out) as eo:
        sst = eo["analysed_sst"]
        assert sst.attrs["units"] == "degC" and sst.shape == (1, 16, 60)
        np.testing.assert_array_equal(eo["longitude"], ds["longitude"])
        np.testing.assert_array_equal(eo["latitude"], ds["latitude"])
        assert np.array_equal(np.isnan(sst.values[0]), np.isnan(ds["thetao"].values[0, 0]))
        assert 22 < float(sst.min()) and float(sst.max()) < 33
        assert eo["time"].values[0] == np.datetime64("2007-03-01")
