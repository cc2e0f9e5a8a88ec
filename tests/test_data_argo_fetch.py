"""Argo profiles through argopy (argo_source: argopy, rule retrieve_argo), tested up to the call
boundary without network: argopy.DataFetcher faked, or the real argopy reading a local GDAC folder
built from the shared real floats (argo_server)."""

from __future__ import annotations

import inspect
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import gsw
import numpy as np
import pandas as pd
import pytest
import xarray as xr  # before argopy: argopy 1.5's lazy import of xarray needs it loaded

import argopy  # isort: skip
import argopy.errors  # isort: skip
from argopy.data_fetchers.gdac_data_processors import pre_process_multiprof  # isort: skip
from argopy.utils.checkers import is_box  # isort: skip
from argopy.utils.lists import list_standard_variables  # isort: skip

from data_helpers import sections
from depthdif.config import validate_config
from depthdif.data import argo_fetch
from depthdif.data.argo import argo_profiles
from depthdif.errors import ConfigError, DataError
from depthdif.inputs import user_file_sets
from workflow_runner import make_workdir, planned_jobs, read_config, snakemake, write_config

# argopy 1.5 calls pandas with `inplace=`, deprecated in pandas 3.1
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

# the tiny config's region and periods (tests/configs/tiny.yaml)
TINY = {"region": {"lon_min": -40.0, "lon_max": -16.0, "lat_min": 30.0, "lat_max": 46.0},
        "periods": {"start": "2015-01", "end": "2015-02"}, "depth_levels": [0.494, 47.37]}
FLOAT = "4901079"  # a MEDS float of the shared data, north-west Atlantic 2007-2012
DACS = {"IF": "coriolis", "KM": "kma", "HZ": "csio", "ME": "meds"}


# --- the request ---


def test_request_from_config() -> None:
    data, _ = sections({})  # default region -40..-8, 24..48; 2015-01..2016-12; deepest level 318.13 m
    request = argo_fetch.fetch_request({"argo_source": "argopy"}, data)
    pres_max = math.ceil(float(gsw.p_from_z(-318.13, 48.0)) + 100.0)
    assert pres_max == 422  # 318.13 m is 321.1 dbar at 48°N, plus the 100 dbar margin
    assert request == {"src": "erddap", "mode": "expert", "ds": "phy", "server": None,
                       "boxes": [[-40.0, -8.0, 24.0, 48.0, 0.0, 422.0, "2015-01-01", "2017-01-01"]]}
    assert is_box(request["boxes"][0])  # argopy's own check of the box
    assert argo_fetch.fetcher_kwargs(request) == {"src": "erddap", "mode": "expert", "ds": "phy"}
    init = inspect.signature(argopy.DataFetcher.__init__).parameters
    assert {"src", "mode", "ds"} <= set(init) and any(p.kind is p.VAR_KEYWORD for p in init.values())

    options = {"argo_source": "argopy", "argo_fetcher": "gdac", "argo_user_mode": "standard",
               "argo_pres_margin": 0.0, "argo_server": "/data/gdac"}
    explicit, _ = sections({"periods": ["2016-03", "2015-11"], "depth_levels": [0, 28],
                            "depth_selection": "index", "source": "copernicus"})
    request = argo_fetch.fetch_request(options, explicit)
    assert request["boxes"][0][5:] == [math.ceil(float(gsw.p_from_z(-318.1274, 48.0))), "2015-11-01", "2016-04-01"]
    assert argo_fetch.fetcher_kwargs(request) == {"src": "gdac", "mode": "standard", "ds": "phy",
                                                  "gdac": "/data/gdac"}
    erddap = argo_fetch.fetcher_kwargs({**request, "src": "erddap"})
    assert erddap["server"] == "/data/gdac" and "gdac" not in erddap
    by_file, _ = sections({"depth_levels": [0, 28], "depth_selection": "index", "source": "netcdf"})
    assert argo_fetch.pressure_max(by_file, 100.0) == 10000.0  # the files' depths are unknown here: no limit
    with pytest.raises(ConfigError, match="monthly 'YYYY-MM' periods"):
        argo_fetch.time_range({"periods": ["t0000", "t0001"]})


@pytest.mark.parametrize(
    ("lon_min", "lon_max", "spans"),
    [
        (-40.0, -8.0, [(-40.0, -8.0)]),
        (170.0, -170.0, [(170.0, 180.0), (-180.0, -170.0)]),  # across the dateline: two boxes
        (190.0, 200.0, [(-170.0, -160.0)]),  # 0-360 longitudes
        (0.0, 360.0, [(-180.0, 180.0)]),
        (-180.0, 180.0, [(-180.0, 180.0)]),
    ],
)
def test_lon_spans(lon_min, lon_max, spans) -> None:  # type: ignore[no-untyped-def]
    assert argo_fetch.lon_spans(lon_min, lon_max) == spans


# --- a fake argopy.DataFetcher returning argopy's point form ---


def _profile(platform: int, cycle: int, time: str, lat: float, lon: float, pres: list[float],
             temp: list[float], **extra: Any) -> dict[str, Any]:
    return {"platform": platform, "cycle": cycle, "time": time, "lat": lat, "lon": lon, "pres": pres,
            "temp": temp, **extra}


def argopy_points(profiles: list[dict[str, Any]], qc: str = "float") -> xr.Dataset:
    """An argopy point collection (N_POINTS, after its cast_types) of `profiles`.

    Keys as in `_profile`, plus psal, data_mode ('R'), position_qc/time_qc ('1'), temp_qc, psal_qc,
    pres_qc (one flag per level, default '1'), temp_adj/psal_adj/pres_adj with their *_qc
    (absent: NaN with flag ' ', which argopy casts to 9). `qc`: the flags' dtype, float as from
    argopy's GDAC fetcher, int or str.
    """
    columns: dict[str, list[Any]] = {}

    def add(name: str, value: Any) -> None:
        columns.setdefault(name, []).append(value)

    for p in profiles:
        n = len(p["pres"])
        for k in range(n):
            add("PLATFORM_NUMBER", float(p["platform"]))
            add("CYCLE_NUMBER", float(p["cycle"]))
            add("DIRECTION", p.get("direction", "A"))
            add("DATA_MODE", p.get("data_mode", "R"))
            add("TIME", np.datetime64(p["time"], "ns"))
            add("TIME_QC", p.get("time_qc", "1"))
            add("LATITUDE", p["lat"])
            add("LONGITUDE", p["lon"])
            add("POSITION_QC", p.get("position_qc", "1"))
            for name, key in (("PRES", "pres"), ("TEMP", "temp"), ("PSAL", "psal")):
                values = p.get(key)
                add(name, np.nan if values is None else values[k])
                add(f"{name}_QC", p.get(f"{key}_qc", "1" * n)[k] if values is not None else "9")
                adjusted = p.get(f"{key}_adj")
                add(f"{name}_ADJUSTED", np.nan if adjusted is None else adjusted[k])
                add(f"{name}_ADJUSTED_QC", p.get(f"{key}_adj_qc", "1" * n)[k] if adjusted is not None else "9")
    data = {}
    for name, values in columns.items():
        array = np.asarray(values)
        if name.endswith("_QC"):
            array = {"float": array.astype(np.float64), "int": array.astype(np.int64), "str": array}[qc]
        elif name in ("PRES", "TEMP", "PSAL") or name.endswith("_ADJUSTED"):
            array = array.astype(np.float32)
        data[name] = ("N_POINTS", array)
    ds = xr.Dataset(data).set_coords(["TIME", "LATITUDE", "LONGITUDE"])
    return ds.assign_coords(N_POINTS=np.arange(ds.sizes["N_POINTS"]))


class FakeFetcher:
    """Stands in for argopy.DataFetcher: records the calls, returns (or raises) per box."""

    def __init__(self, calls: list, result: Any) -> None:
        self.calls, self.result = calls, result

    def __call__(self, **kwargs: Any) -> FakeFetcher:
        self.calls.append(("DataFetcher", kwargs))
        return self

    def region(self, box: list) -> FakeFetcher:
        self.calls.append(("region", box))
        self.box = box
        return self

    def to_xarray(self, **kwargs: Any) -> xr.Dataset:
        self.calls.append(("to_xarray", kwargs))
        result = self.result(self.box) if callable(self.result) else self.result
        if isinstance(result, BaseException):
            raise result
        return result


def fake(monkeypatch: pytest.MonkeyPatch, result: Any) -> list:
    calls: list = []
    monkeypatch.setattr(argopy, "DataFetcher", FakeFetcher(calls, result))
    return calls


def tiny_request(**options: Any) -> dict[str, Any]:
    data, _ = sections(TINY)
    return argo_fetch.fetch_request({"argo_source": "argopy", **options}, data)


QC_CASE = [
    # good levels 5, 50, 200 (100 has TEMP_QC 4); salinity bad at 50
    _profile(6901001, 1, "2015-01-10T06:00", 35.0, -30.0, [5, 50, 100, 200], [20.0, 18.0, 15.0, 12.0],
             temp_qc="1141", psal=[36.5, 36.4, 36.3, 36.0], psal_qc="1411"),
    # delayed mode: the adjusted values, never the raw ones; raw level 3 flagged bad in adjusted QC
    _profile(6901001, 2, "2015-02-03T06:00", 36.0, -29.0, [6, 60, 120], [99.0, 99.0, 99.0], data_mode="D",
             temp_adj=[19.5, 17.5, 14.5], temp_adj_qc="114", pres_adj=[6.5, 60.5, 120.5],
             psal=[36.0, 36.0, 36.0], psal_adj=[36.1, 36.2, 36.3]),
    _profile(6901002, 7, "2015-01-20T00:00", 40.0, -20.0, [10, 30], [16.0, 15.0], position_qc="4"),  # bad position
    _profile(6901002, 8, "2015-01-30T00:00", 40.0, -20.0, [10, 30], [16.0, 15.0], time_qc="3"),  # bad date
    _profile(6901003, 3, "2015-03-01T00:00", 40.0, -20.0, [10, 30], [16.0, 15.0]),  # after the periods
    _profile(6901004, 3, "2015-01-15T00:00", 47.0, -20.0, [10, 30], [16.0, 15.0]),  # north of the region
]


@pytest.mark.parametrize("qc", ["float", "int", "str"])
def test_fake_fetch_writes_a_prof_file_our_reader_qcs(tmp_path, monkeypatch, qc) -> None:  # type: ignore[no-untyped-def]
    calls = fake(monkeypatch, argopy_points(QC_CASE, qc))
    request = tiny_request()
    out = tmp_path / "resources" / "argo" / "a1" / "argo_prof.nc"
    summary = argo_fetch.retrieve_argo(request, out, "a1")
    box = [-40.0, -16.0, 30.0, 46.0, 0.0, math.ceil(float(gsw.p_from_z(-47.37, 46.0)) + 100.0),
           "2015-01-01", "2015-03-01"]
    assert calls == [("DataFetcher", {"src": "erddap", "mode": "expert", "ds": "phy"}), ("region", box),
                     ("to_xarray", {"errors": "raise"})]
    assert summary["profiles"] == 4 and summary["floats"] == 2  # the last two lie outside: not in the file
    assert [p.name for p in out.parent.iterdir()] == ["argo_prof.nc"]  # written atomically

    with xr.open_dataset(out, decode_timedelta=False) as ds:
        for name in ("PLATFORM_NUMBER", "CYCLE_NUMBER", "JULD", "JULD_QC", "LATITUDE", "LONGITUDE",
                     "POSITION_QC", "DATA_MODE"):
            assert ds[name].dims == ("N_PROF",), name
        for name in ("PRES", "PRES_QC", "TEMP", "TEMP_QC", "PSAL", "PSAL_QC", "TEMP_ADJUSTED",
                     "TEMP_ADJUSTED_QC", "PSAL_ADJUSTED", "PSAL_ADJUSTED_QC", "PRES_ADJUSTED", "PRES_ADJUSTED_QC"):
            assert ds[name].dims == ("N_PROF", "N_LEVELS"), name
        assert ds.sizes == {"N_PROF": 4, "N_LEVELS": 4}
        assert ds["TEMP_QC"].dtype == "S1" and ds["TEMP_QC"].values[0].tolist() == [b"1", b"1", b"4", b"1"]
        assert ds["PLATFORM_NUMBER"].values.tolist() == [b"6901001", b"6901001", b"6901002", b"6901002"]
        assert ds["JULD"].encoding["units"].startswith("days since 1950-01-01")

    rows = argo_profiles(out)
    assert set(zip(rows["platform"], rows["cycle"])) == {("6901001", 1), ("6901001", 2)}
    first = rows[rows["cycle"] == 1]
    assert first["pres"].tolist() == [5.0, 50.0, 200.0] and first["temp"].tolist() == [20.0, 18.0, 12.0]
    np.testing.assert_array_equal(first["psal"], [36.5, np.nan, 36.0])
    second = rows[rows["cycle"] == 2]
    np.testing.assert_allclose(second["temp"], [19.5, 17.5])
    np.testing.assert_allclose(second["pres"], [6.5, 60.5])
    np.testing.assert_allclose(second["psal"], [36.1, 36.2], rtol=1e-6)
    assert first["time"].iloc[0] == pd.Timestamp("2015-01-10T06:00") and first["lat"].iloc[0] == 35.0


def test_dateline_boxes_fetch_each_profile_once(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    at_180 = _profile(5900001, 4, "2015-01-05", 10.0, 180.0, [10, 20], [28.0, 27.0])
    west = _profile(5900002, 9, "2015-01-06", 11.0, -175.0, [10, 20], [28.5, 27.5])
    east = _profile(5900003, 1, "2015-01-07", 12.0, 175.0, [10], [29.0])  # a single-level profile
    # argopy's erddap takes both box edges: the profile at 180° comes back from both boxes
    result = {170.0: argopy_points([at_180, east]), -180.0: argopy_points([at_180, west])}
    calls = fake(monkeypatch, lambda box: result[box[0]])
    data, _ = sections({**TINY, "region": {"lon_min": 170.0, "lon_max": -170.0, "lat_min": 0.0, "lat_max": 20.0}})
    request = argo_fetch.fetch_request({"argo_source": "argopy"}, data)
    argo_fetch.retrieve_argo(request, tmp_path / "argo_prof.nc")
    assert [c[1][:2] for c in calls if c[0] == "region"] == [[170.0, 180.0], [-180.0, -170.0]]
    rows = argo_profiles(tmp_path / "argo_prof.nc")
    assert rows.groupby("platform").size().to_dict() == {"5900001": 2, "5900002": 2, "5900003": 1}


# --- errors at the call boundary ---


@pytest.mark.parametrize(
    "error",
    [
        argopy.errors.GdacPathError("Index file does not exist: https://data-argo.ifremer.fr/ar_index_global_prof.txt"),
        argopy.errors.ErddapServerError("Your request is probably taking longer than expected"),
        argopy.errors.ErddapHTTPNotFound("https://erddap.ifremer.fr/erddap/tabledap/ArgoFloats.nc"),
        argopy.errors.NetCDF4FileNotFoundError("https://data-argo.ifremer.fr/dac/meds/4901079/4901079_prof.nc"),
        OSError("Cannot connect to host erddap.ifremer.fr:443 ssl:default [Name or service not known]"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_and_server_errors_name_fetcher_box_and_what_to_do(tmp_path, monkeypatch, error) -> None:  # type: ignore[no-untyped-def]
    fake(monkeypatch, error)
    request = tiny_request(argo_fetcher="gdac")
    out = tmp_path / "argo_prof.nc"
    with pytest.raises(DataError) as info:
        argo_fetch.retrieve_argo(request, out, "argo1")
    message = str(info.value)
    for fragment in ("scenarios.argo1", "'gdac' fetcher", str(request["boxes"][0]), type(error).__name__,
                     "network", "argo_fetcher to 'erddap'", "argo_source: files", "argo_paths"):
        assert fragment in message
    assert info.value.__cause__ is error and not out.exists()


def test_no_profile_in_the_box_is_a_clear_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    request = tiny_request()
    for result in (argopy.errors.DataNotFound("No data found for: [x=-40.00/-16.00; ...]"),
                   argopy_points(QC_CASE).isel(N_POINTS=[])):
        fake(monkeypatch, result)
        with pytest.raises(DataError, match=r"argopy returned no profile in box\(es\).*Widen data.region"):
            argo_fetch.retrieve_argo(request, tmp_path / "argo_prof.nc", "a1")
    fake(monkeypatch, argopy_points([QC_CASE[4], QC_CASE[5]]))  # outside the dates / the region only
    with pytest.raises(DataError, match="no Argo point lies in box"):
        argo_fetch.retrieve_argo(request, tmp_path / "argo_prof.nc", "a1")
    assert not (tmp_path / "argo_prof.nc").exists()


def test_missing_argopy_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "argopy", None)
    with pytest.raises(ConfigError, match=r"scenarios.a1.argo_source.*depthdif\[argo\].*argo_source: files"):
        argo_fetch.fetch_points(tiny_request(), "a1")


# --- real files ---


def _points_of(prof_file: Path) -> xr.Dataset:
    """argopy's point form of a GDAC file, as its GDAC fetcher makes it (argopy's profile2point)."""
    with xr.open_dataset(prof_file) as raw:
        points = pre_process_multiprof(raw.load(), access_point="WMO", access_point_opts={"WMO": [int(FLOAT)]})
    return points.argo.cast_types(overwrite=False).sortby("TIME")


def _whole_float_request(**options: Any) -> dict[str, Any]:
    data, _ = sections({"region": {"lon_min": -70.0, "lon_max": -20.0, "lat_min": 30.0, "lat_max": 60.0},
                        "periods": {"start": "2007-01", "end": "2012-12"}, "depth_levels": [0.494, 1000.0]})
    return argo_fetch.fetch_request({"argo_source": "argopy", "argo_pres_margin": 1000.0, **options}, data)


def test_real_float_round_trip(real_data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """argopy's points of a real float -> our _prof.nc -> the same QC'd profiles as the GDAC file."""
    original = real_data_dir / "argo" / f"{FLOAT}_prof.nc"
    points = _points_of(original)
    fake(monkeypatch, points)
    out = tmp_path / "argo_prof.nc"
    summary = argo_fetch.retrieve_argo(_whole_float_request(), out)
    assert summary["profiles"] == 181 and summary["floats"] == 1
    expected, back = argo_profiles(original), argo_profiles(out)
    assert len(expected) == 12735 and expected["time"].nunique() > 150
    pd.testing.assert_frame_equal(back, expected)  # profiles, positions, times, pressures, TEMP, PSAL: equal

    # user mode standard: argopy merges the adjusted values in by data mode and drops every point
    # with a bad flag in any QC variable (11 levels with a bad PSAL here) before our QC
    standard = points.argo.datamode.merge().argo.filter_qc(QC_list=[1, 2])
    standard = standard.drop_vars(sorted(set(standard.data_vars) - set(list_standard_variables())))
    fake(monkeypatch, standard)
    argo_fetch.retrieve_argo(_whole_float_request(argo_user_mode="standard"), out)
    merged = argo_profiles(out).merge(expected, on=["platform", "cycle", "pres"], how="left",
                                      suffixes=("", "_files"), validate="1:1")
    assert len(merged) == len(expected) - 11
    np.testing.assert_array_equal(merged["temp"], merged["temp_files"])
    np.testing.assert_array_equal(merged["psal"], merged["psal_files"])


def local_gdac(real_data_dir: Path, root: Path, mono: tuple[str, str] | None = None) -> Path:
    """A GDAC folder (dac/<dac>/<wmo>/<wmo>_prof.nc + ar_index_global_prof.txt) of the shared floats.

    argopy's GDAC fetcher reads the floats' multi-profile files when more than 25 profiles match a
    box, else the mono-profile files (profiles/<mode><wmo>_<cycle>.nc) the index lists: those are
    written only for the profiles dated in `mono` ('YYYY-MM-DD' start, end).
    """
    rows = []
    for path in sorted((real_data_dir / "argo").glob("*_prof.nc")):
        wmo = path.name.split("_")[0]
        with xr.open_dataset(path, decode_times=False, mask_and_scale=False, decode_timedelta=False) as raw:
            raw = raw.load()
        with xr.open_dataset(path) as ds:
            text = {v: np.char.strip(ds[v].values.astype(str)) for v in ("DATA_CENTRE", "DATA_MODE", "DIRECTION",
                                                                            "WMO_INST_TYPE")}
            dac = DACS[text["DATA_CENTRE"][0]]
            folder = root / "dac" / dac / wmo
            (folder / "profiles").mkdir(parents=True)
            shutil.copy(path, folder / path.name)
            for k in range(ds.sizes["N_PROF"]):
                name = (f"{text['DATA_MODE'][k]}{wmo}_{int(ds['CYCLE_NUMBER'].values[k]):03d}"
                        f"{'D' if text['DIRECTION'][k] == 'D' else ''}.nc")
                time = pd.Timestamp(ds["JULD"].values[k])
                rows.append(f"{dac}/{wmo}/profiles/{name},{time:%Y%m%d%H%M%S},"
                            f"{float(ds['LATITUDE'].values[k]):.3f},{float(ds['LONGITUDE'].values[k]):.3f},A,"
                            f"{text['WMO_INST_TYPE'][k]},{text['DATA_CENTRE'][k]},20240101000000")
                if mono is not None and pd.Timestamp(mono[0]) <= time < pd.Timestamp(mono[1]):
                    raw.isel(N_PROF=[k]).to_netcdf(folder / "profiles" / name)
    header = "".join(f"# {line}\n" for line in (
        "Title : Profile directory file of the Argo Global Data Assembly Center", "Description : test copy",
        "Project : ARGO", "Format version : 2.0", "Date of update : 20240101000000",
        "FTP root number 1 : ftp://ftp.ifremer.fr/ifremer/argo/dac", "FTP root number 2 : none",
        "GDAC node : test"))
    index = header + "file,date,latitude,longitude,ocean,profiler_type,institution,date_update\n"
    (root / "ar_index_global_prof.txt").write_text(index + "\n".join(rows) + "\n")
    return root


def test_real_argopy_on_a_local_gdac(real_data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The real argopy (no fake): its GDAC fetcher on a local mirror (argo_server), three years of one float."""
    monkeypatch.setitem(argopy.options.OPTIONS, "cachedir", str(tmp_path / "cache"))
    gdac = local_gdac(real_data_dir, tmp_path / "gdac")
    data, _ = sections({"region": {"lon_min": -70.0, "lon_max": -20.0, "lat_min": 30.0, "lat_max": 60.0},
                        "periods": {"start": "2008-01", "end": "2010-12"}, "depth_levels": [0.494, 1000.0]})
    request = argo_fetch.fetch_request({"argo_source": "argopy", "argo_fetcher": "gdac", "argo_server": str(gdac),
                                        "argo_pres_margin": 1000.0}, data)
    out = tmp_path / "argo_prof.nc"
    argo_fetch.retrieve_argo(request, out, "a1")
    expected = argo_profiles(real_data_dir / "argo" / f"{FLOAT}_prof.nc")
    expected = expected[(expected["time"] >= "2008-01-01") & (expected["time"] < "2011-01-01")].reset_index(drop=True)
    assert expected["cycle"].nunique() == 108
    pd.testing.assert_frame_equal(argo_profiles(out), expected)


# --- config and workflow ---


def _with_argopy_scenario(**options: Any) -> dict[str, Any]:
    return {"scenarios": {"prof": {"mode": "argo_profiles", "argo_source": "argopy", **options},
                          "pixel": {"mode": "pixel", "fraction": 0.5}}}


def test_config_defaults_and_user_files() -> None:
    config = validate_config(_with_argopy_scenario())
    assert config["scenarios"]["prof"] == {
        "mode": "argo_profiles", "argo_source": "argopy", "argo_fetcher": "erddap", "argo_user_mode": "expert",
        "argo_pres_margin": 100.0, "argo_server": None, "argo_paths": [], "seed": 0, "min_side": 2, "max_side": 8,
        "n_tracks": 3, "sample_every": 3, "surface_within_m": 10.0, "salinity_fallback": 35.0,
        "min_observed_pixels": 1, "holdout_floats": 0.0, "holdout_seed": 0,
    }
    assert "argo_fetcher" not in config["scenarios"]["pixel"]  # other scenarios' params stay as they were
    assert user_file_sets(config) == {}  # no user file: retrieve_argo writes it


@pytest.mark.parametrize(
    ("scenarios", "expected"),
    [
        ({"a": {"mode": "argo_profiles", "argo_source": "argopy", "argo_paths": "x/*_prof.nc"}},
         ["scenarios.a.argo_paths", "scenarios.a.argo_source", "remove argo_paths"]),
        ({"a": {"mode": "argo_profiles", "argo_fetcher": "gdac", "argo_paths": "x.nc"}},
         ["scenarios.a.argo_fetcher", "only argo_source 'argopy'"]),
        ({"a": {"mode": "pixel", "fraction": 0.5, "argo_source": "argopy"}},
         ["scenarios.a.argo_source", "'pixel'"]),
        ({"a": {"mode": "argo", "fraction": 0.9}}, ["scenarios.a.argo_paths", "argo_source: argopy"]),
        ({"a": {"mode": "argo", "fraction": 0.9, "argo_source": "argopy", "argo_fetcher": "argovis"}},
         ["scenarios.a.argo_fetcher", "'argovis'", "erddap"]),
    ],
)
def test_config_mistakes(scenarios, expected) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        validate_config({"scenarios": scenarios})
    for fragment in expected:
        assert fragment in str(info.value)


def test_argopy_needs_monthly_periods() -> None:
    with pytest.raises(ConfigError, match="scenarios.prof.argo_source.*data.periods.*monthly"):
        validate_config({"data": {"periods": ["t0000"]}, **_with_argopy_scenario()})


def _dry_run_blocks(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, wildcards, input line) of each job a dry run lists."""
    jobs = []
    for block in output.split("\n\n"):
        lines = block.strip().splitlines()
        rule = next((line.split()[-1].rstrip(":") for line in lines if line.lstrip().startswith(
            ("rule ", "localrule "))), None)
        if rule is None:
            continue
        wildcards = next((line.split("wildcards: ", 1)[1] for line in lines if "wildcards: " in line), "")
        inputs = next((line.split("input: ", 1)[1] for line in lines if line.lstrip().startswith("input: ")), "")
        jobs.append((rule, dict(item.split("=", 1) for item in wildcards.split(", ") if item), inputs))
    return jobs


@pytest.mark.e2e
def test_dry_run_plans_retrieve_argo_before_make_shards(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path / "wf")
    config = read_config(workdir)
    config["scenarios"]["prof"] = {"mode": "argo_profiles", "argo_source": "argopy"}
    write_config(workdir, config)
    proc = snakemake(workdir, "-n", "data")
    jobs = _dry_run_blocks(proc.stdout)
    assert [w for rule, w, _ in jobs if rule == "retrieve_argo"] == [{"scenario": "prof"}]
    shards = {(w["scenario"], w["split"]): inputs for rule, w, inputs in jobs if rule == "make_shards"}
    assert len(shards) == 9
    for (scenario, _), inputs in shards.items():
        assert ("resources/argo/prof/argo_prof.nc" in inputs) == (scenario == "prof")
    assert not (workdir / "resources").exists()  # no user-file checksums, nothing fetched


@pytest.mark.e2e
def test_retrieve_argo_then_make_shards_on_a_local_gdac(real_data_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The rules for real (argopy's GDAC fetcher on a local mirror, argo_server): retrieve_argo's log,
    benchmark and file, make_shards reading it; a changed request reruns them, an unrelated key does not."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # argopy's cache folder
    gdac = local_gdac(real_data_dir, tmp_path / "gdac", mono=("2009-02-01", "2009-04-01"))
    workdir = make_workdir(tmp_path / "wf")
    config = read_config(workdir)
    config["data"]["region"] = {"lon_min": -48.0, "lon_max": -24.0, "lat_min": 32.0, "lat_max": 48.0}
    config["data"]["periods"] = {"start": "2009-02", "end": "2009-03"}
    config["scenarios"] = {"argo90": {"mode": "argo", "fraction": 0.9, "argo_source": "argopy",
                                      "argo_fetcher": "gdac", "argo_server": str(gdac)}}
    write_config(workdir, config)
    targets = ("resources/argo/argo90/argo_prof.nc", "results/shards/argo90/train")
    snakemake(workdir, "--cores", "2", *targets)
    rows = argo_profiles(workdir / targets[0])
    assert set(rows["platform"]) == {FLOAT} and rows["cycle"].nunique() == 5  # 2009-02-14 .. 2009-03-26
    assert rows["time"].min() >= pd.Timestamp("2009-02-01") and rows["time"].max() < pd.Timestamp("2009-04-01")
    log = (workdir / "logs/retrieve_argo/argo90.log").read_text()
    assert "argopy.DataFetcher(src='gdac', mode='expert', ds='phy', gdac=" in log
    assert (workdir / "results/benchmarks/retrieve_argo/argo90.tsv").is_file()
    manifest = json.loads((workdir / targets[1] / "manifest.json").read_text())
    assert manifest["n"] > 0 and manifest["mask"]["argo_paths"] == [targets[0]]  # make_shards read the fetched file

    assert planned_jobs(snakemake(workdir, "-n", *targets).stdout) == []
    config["data"]["eo"] = "surface"  # not in the request: no refetch (the patches rerun)
    write_config(workdir, config)
    assert "retrieve_argo" not in {rule for rule, _ in planned_jobs(snakemake(workdir, "-n", *targets).stdout)}
    config["data"]["eo"] = "ostia"
    config["scenarios"]["argo90"]["argo_pres_margin"] = 50.0
    write_config(workdir, config)
    assert sorted(rule for rule, _ in planned_jobs(snakemake(workdir, "-n", *targets).stdout)) == [
        "make_shards", "retrieve_argo"]
