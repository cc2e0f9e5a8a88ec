"""Spatial-block split (no leakage, determinism) and the train-only stats of the index."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_helpers import sections
from depthdif.data import index as index_mod
from depthdif.data.split import assign_splits, block_counts
from depthdif.errors import DataError


def _index(periods=("2015-01", "2016-01", "2017-01"), n=10, step=32) -> pd.DataFrame:
    rows = [{"patch_id": f"{p}_y{y:05d}_x{x:05d}", "y0": y, "x0": x,
             "time": pd.Timestamp(p + "-01")}
            for p in periods for y in range(0, n * step, step) for x in range(0, n * step, step)]
    return pd.DataFrame(rows)


def test_split_has_no_spatial_leakage_and_is_deterministic() -> None:
    _, cfg = sections()
    split_cfg = {**cfg["split"], "block_px": 64}
    a = assign_splits(_index(), split_cfg)
    per_location = a.groupby(["y0", "x0"])["split"].nunique()
    assert per_location.max() == 1  # a location is in one split in every period
    assert a.groupby("block")["split"].nunique().max() == 1
    assert a["block"].nunique() == 25  # (10*32 px / 64 px)^2 blocks
    blocks = a.drop_duplicates("block")["split"].value_counts()
    assert (blocks["train"], blocks["val"], blocks["test"]) == (18, 2, 5)  # 17.5/2.5/5 of 25 blocks, largest remainder
    pd.testing.assert_frame_equal(a, assign_splits(_index(), split_cfg))
    other = assign_splits(_index(), {**split_cfg, "seed": 1})
    assert not other["split"].equals(a["split"])


def test_every_split_gets_a_block_and_test_years() -> None:
    assert block_counts(3, {"train": 0.9, "val": 0.05, "test": 0.05}) == {"train": 1, "val": 1, "test": 1}
    assert block_counts(2, {"train": 0.8, "val": 0.1, "test": 0.1}) == {"train": 2, "val": 0, "test": 0}
    _, cfg = sections(patches={"split": {"test_years": [2016]}})
    a = assign_splits(_index(), cfg["split"])
    years = a["time"].dt.year
    assert (a.loc[years == 2016, "split"] == "test").all()
    assert set(a.loc[years != 2016, "split"]) == {"train", "val", "test"}
    seconds = _index().assign(time=lambda d: d["time"].astype("datetime64[s]").astype("int64"))
    assert (assign_splits(seconds, cfg["split"])["split"] == a["split"]).all()


def _write_npz(path, period, y0s, values, eo=True) -> None:
    n = len(y0s)
    y = np.stack([np.full((2, 8, 8), v, dtype=np.float32) for v in values])
    y[:, 1, 0, 0] = np.nan  # some invalid values that must be ignored
    arrays = {
        "y": y, "lat": np.tile(np.arange(8, dtype=np.float32), (n, 1)),
        "lon": np.tile(np.arange(8, dtype=np.float32) - 20, (n, 1)),
        "y0": np.asarray(y0s, np.int32), "x0": np.zeros(n, np.int32),
        "time": np.full(n, np.datetime64(period + "-01", "s").astype(np.int64)),
        "patch_id": np.array([f"{period}_y{a:05d}_x00000" for a in y0s], dtype="<U64"),
        "nodata_fraction": np.full(n, 1 / 128, np.float32),
        "depth": np.array([0.5, 50.0], np.float32), "period": np.array(period),
        "source_file": np.array(f"raw/{period}.nc"),
    }
    if eo:
        arrays["eo"] = y[:, :1] + 1.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("chunk_values", [index_mod.CHUNK_VALUES, 100])
def test_gather_stats_from_train_only(tmp_path, monkeypatch, chunk_values) -> None:
    # Patch values grow with the row: the splits, made of different rows, have different means.
    # A small chunk makes the streamed moments cross many chunk boundaries inside one file.
    monkeypatch.setattr(index_mod, "CHUNK_VALUES", chunk_values)
    y0s = list(range(0, 80, 8))
    paths = []
    for k, period in enumerate(("2015-01", "2015-02")):
        path = tmp_path / f"{period}.npz"
        _write_npz(path, period, y0s, [float(a) + k for a in y0s])
        paths.append(path)
    _, cfg = sections(patches={"split": {"block_px": 8}})
    index_mod.gather_patches(paths, cfg, tmp_path / "index.parquet", tmp_path / "stats.json")
    idx = pd.read_parquet(tmp_path / "index.parquet")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert list(idx.columns) == index_mod.INDEX_COLUMNS and len(idx) == 20
    row = idx.iloc[0]
    assert (row["lat_min"], row["lat_max"], row["lat"], row["size"]) == (0.0, 7.0, 3.5, 8)
    assert (row["lon_min"], row["lon_max"]) == (-20.0, -13.0) and row["source_file"] == "raw/2015-01.nc"
    assert row["period"] == "2015-01" and row["time"] == pd.Timestamp("2015-01-01")
    train = idx[idx["split"] == "train"]
    value = train["y0"].to_numpy() + train["period"].eq("2015-02").to_numpy()
    assert stats["n_patches"] == len(train) and stats["split"] == "train"
    assert stats["depth"] == [0.5, 50.0]
    np.testing.assert_allclose(stats["mean"], [value.mean()] * 2, rtol=1e-12)
    np.testing.assert_allclose(stats["std"], [value.std()] * 2, rtol=1e-12)
    np.testing.assert_allclose([stats["eo_mean"], stats["eo_std"]], [value.mean() + 1, value.std()], rtol=1e-12)
    everything = idx["y0"].to_numpy() + idx["period"].eq("2015-02").to_numpy()
    assert abs(everything.mean() - value.mean()) > 1.0  # the test can tell train from all


def test_gather_without_eo_and_empty_train(tmp_path) -> None:
    path = tmp_path / "2015-01.npz"
    _write_npz(path, "2015-01", [0, 8, 16, 24], [1.0, 2.0, 3.0, 4.0], eo=False)
    _, cfg = sections(patches={"split": {"block_px": 8}})
    index_mod.gather_patches([path], cfg, tmp_path / "i.parquet", tmp_path / "s.json")
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["eo_mean"] is None and stats["eo_std"] is None
    _, empty = sections(patches={"split": {"fractions": {"train": 0.0, "val": 0.5, "test": 0.5}}})
    with pytest.raises(DataError, match="train split is empty.*patches.split.block_px.*fractions"):
        index_mod.gather_patches([path], empty, tmp_path / "i2.parquet", tmp_path / "s2.json")
    assert not (tmp_path / "i2.parquet").exists()
