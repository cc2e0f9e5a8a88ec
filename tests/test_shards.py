"""save_shards / read_manifest: layout, dtypes, manifest, atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from depthdif.data.occlusion import write_split_shards
from depthdif.dataset import ShardDataset
from depthdif.errors import ConfigError, DataError, NoPatchesError
from depthdif.io import write_json
from depthdif.masks import make_mask
from depthdif.shards import load_arrays, read_manifest, save_shards, verify_shards


def _arrays(n: int = 5, c: int = 2, h: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    land = np.zeros((n, h, h), bool)
    land[:, 0, :] = True  # 12 ocean pixels per patch
    valid = np.repeat(~land[:, None], c, axis=1)
    observed = np.zeros((n, h, h), bool)
    observed[:, 1, :3] = True  # 3 of 12 ocean pixels observed -> 0.25
    a = observed[:, None] & valid
    y = np.where(valid, rng.normal(size=(n, c, h, h)), 0.0)
    return {
        "y": y, "y_valid": valid, "x": np.where(a, y, 0.0), "x_valid": a, "land": land,
        "eo": rng.normal(size=(n, 1, h, h)), "lat": np.zeros((n, h)), "lon": np.zeros((n, h)),
        "time": np.arange(n), "patch_id": np.array([f"p{i}" for i in range(n)]),
    }


def test_layout_manifest_and_dtypes(tmp_path: Path) -> None:
    out = tmp_path / "shards" / "s" / "train"
    stats = {"mean": [15.0, 10.0], "std": [3.0, 2.0], "eo_mean": 15.0, "eo_std": 3.0}
    save_shards(out, _arrays(), scenario="s", split="train", stats=stats, depth=np.array([0.5, 50.0]),
                mask_cfg={"mode": "pixel", "fraction": 0.75}, shard_size=2)
    m = read_manifest(out)
    assert m["n"] == 5 and m["shard_size"] == 2 and m["channels"] == 2 and m["size"] == 4
    assert [{k: s[k] for k in ("name", "n")} for s in m["shards"]] == [
        {"name": "shard-0000", "n": 2}, {"name": "shard-0001", "n": 2}, {"name": "shard-0002", "n": 1}
    ]
    assert m["depth"] == [0.5, 50.0] and m["stats"] == stats and m["has_eo"] is True
    assert m["mask"] == {"mode": "pixel", "fraction": 0.75} and m["scenario"] == "s" and m["split"] == "train"
    assert m["observed_fraction"] == pytest.approx(0.25) and m["hidden_fraction"] == pytest.approx(0.75)
    dtypes = {"y": "float32", "y_valid": "uint8", "x": "float32", "x_valid": "uint8", "land": "uint8",
              "eo": "float32", "lat": "float32", "lon": "float32", "time": "int64", "patch_id": "<U64"}
    for name, dtype in dtypes.items():
        arr = np.load(out / "shard-0002" / f"{name}.npy", allow_pickle=False)
        assert arr.dtype == np.dtype(dtype) and arr.shape[0] == 1, name
    assert np.load(out / "shard-0002" / "patch_id.npy")[0] == "p4"
    assert sorted(p.name for p in out.parent.iterdir()) == ["train"]  # no temp leftovers


def test_bad_shapes_leave_nothing_behind(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["land"] = arrays["land"][:, :3]
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="land"):
        save_shards(out, arrays, scenario="s", split="val", stats={}, depth=[0, 1], mask_cfg={}, shard_size=2)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="lack"):
        save_shards(out, {"y": np.zeros((1, 1, 2, 2))}, scenario="s", split="val", stats={}, depth=[0],
                    mask_cfg={}, shard_size=2)


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a shard folder"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{bad")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_verify_shards_catches_a_same_size_change_and_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "shards" / "s" / "test"
    save_shards(out, _arrays(), scenario="s", split="test", stats={"mean": [0.0, 0.0], "std": [1.0, 1.0]},
                depth=[0.5, 50.0], mask_cfg={"mode": "pixel", "fraction": 0.75}, shard_size=2)
    manifest = read_manifest(out)
    assert set(manifest["shards"][1]["sha256"]) == {"y", "y_valid", "x", "x_valid", "land", "eo", "lat", "lon",
                                                    "time", "patch_id"}
    assert verify_shards(out) == manifest
    target = out / "shard-0001" / "y.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01  # one bit of the last value: same size, still a valid .npy
    target.write_bytes(bytes(data))
    assert np.load(target).shape == (2, 2, 4, 4)  # the file still loads: only the checksum catches it
    with pytest.raises(DataError, match=r"shard-0001/y\.npy changed after it was written") as caught:
        verify_shards(out)
    assert "rerun rule make_shards" in str(caught.value)
    target.unlink()
    with pytest.raises(DataError, match=r"cannot read shard array .*shard-0001/y\.npy"):
        verify_shards(out)


def test_verify_shards_accepts_a_manifest_without_checksums(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "old"
    save_shards(out, _arrays(), scenario="s", split="test", stats={"mean": [0.0, 0.0], "std": [1.0, 1.0]},
                depth=[0.5, 50.0], mask_cfg={}, shard_size=5)
    manifest = read_manifest(out)
    del manifest["shards"][0]["sha256"]
    write_json(out / "manifest.json", manifest)
    with caplog.at_level("WARNING", logger="depthdif.shards"):
        assert verify_shards(out) == manifest
    assert "no checksums" in caplog.text


# --- write_split_shards on a hand-built patch set (contract "Patches") ---------------------

PERIODS = ("2015-01", "2015-02")
C, S = 2, 12


def _period_npz(path: Path, period: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    y = 15.0 + 3.0 * np.sin(xx / 3.0 + rng.uniform(0, 6, (n, C, 1, 1))) - 4.0 * np.arange(C)[None, :, None, None]
    y = np.broadcast_to(y, (n, C, S, S)).astype(np.float32).copy()
    y[:, :, :3, :4] = np.nan  # land
    y[:, 1, 3, :] = np.nan  # below the sea floor at depth 1 only
    eo = y[:, :1] + rng.normal(0, 0.1, (n, 1, S, S)).astype(np.float32)
    y0, x0 = np.zeros(n, np.int32), (np.arange(n) * S).astype(np.int32)
    ids = np.array([f"{period}_y{a:05d}_x{b:05d}" for a, b in zip(y0, x0)][::-1], "<U64")  # unsorted on purpose
    np.savez(
        path, y=y, eo=eo, lat=np.tile(np.linspace(40, 43, S, dtype=np.float32), (n, 1)),
        lon=np.tile(np.linspace(-30, -27, S, dtype=np.float32), (n, 1)), y0=y0, x0=x0,
        time=np.full(n, 1420070400 + 2678400 * PERIODS.index(period), np.int64), patch_id=ids,
        nodata_fraction=np.isnan(y).mean(axis=(1, 2, 3)).astype(np.float32), depth=np.array([0.5, 50.0], np.float32),
    )
    return list(ids)


@pytest.fixture()
def patch_set(tmp_path: Path) -> dict[str, object]:
    files, rows = [], []
    for k, period in enumerate(PERIODS):
        path = tmp_path / "patches" / f"{period}.npz"
        path.parent.mkdir(exist_ok=True)
        ids = _period_npz(path, period, 3, k)
        files.append(str(path))
        rows += [{"patch_id": pid, "period": period, "split": "test" if pid.endswith("x00012") else "train"}
                 for pid in ids]
    index = pd.DataFrame(rows)
    index.to_parquet(tmp_path / "patches" / "index.parquet")
    stats = {"mean": [15.0, 11.0], "std": [2.0, 2.5], "eo_mean": 15.5, "eo_std": 2.0, "depth": [0.5, 50.0],
             "n_patches": 4, "split": "train"}
    write_json(tmp_path / "patches" / "stats.json", stats)
    return {"index": tmp_path / "patches" / "index.parquet", "stats": tmp_path / "patches" / "stats.json",
            "files": files, "rows": index, "out": tmp_path / "shards"}


def test_write_split_shards_round_trip(patch_set: dict) -> None:
    cfg = {"mode": "tracks", "fraction": 0.8, "seed": 5, "n_tracks": 2, "sample_every": 2}
    out = patch_set["out"] / "tr" / "train"
    summary = write_split_shards(patch_set["index"], patch_set["stats"], patch_set["files"], "tr", cfg, "train", 3, out)
    assert summary["n"] == 4 and summary["n_shards"] == 2
    m = read_manifest(out)
    assert [s["n"] for s in m["shards"]] == [3, 1] and m["mask"] == cfg and m["depth"] == [0.5, 50.0]
    arrays = load_arrays(out)
    expected_ids = sorted(patch_set["rows"].query("split == 'train'")["patch_id"])
    assert list(arrays["patch_id"]) == expected_ids
    mean, std = np.array([15.0, 11.0])[:, None, None], np.array([2.0, 2.5])[:, None, None]
    hidden = []
    for i, pid in enumerate(expected_ids):
        with np.load(Path(patch_set["files"][PERIODS.index(pid[:7])]), allow_pickle=False) as npz:
            j = list(npz["patch_id"]).index(pid)
            y, eo, lat, lon = npz["y"][j], npz["eo"][j], npz["lat"][j], npz["lon"][j]
        valid = np.isfinite(y)
        assert np.array_equal(arrays["y_valid"][i].astype(bool), valid)
        assert np.array_equal(arrays["land"][i].astype(bool), ~valid[0])
        np.testing.assert_allclose((arrays["y"][i] * std + mean)[valid], y[valid], rtol=1e-6)
        assert np.all(arrays["y"][i][~valid] == 0)
        observed = make_mask("tracks", valid[0], 0.8, 5, pid, cfg, lat=lat, lon=lon)
        a = arrays["x_valid"][i].astype(bool)
        assert np.array_equal(a, observed[None] & valid)
        assert np.array_equal(arrays["x"][i][a], arrays["y"][i][a]) and np.all(arrays["x"][i][~a] == 0)
        np.testing.assert_allclose(arrays["eo"][i, 0][valid[0]], (eo[0][valid[0]] - 15.5) / 2.0, rtol=1e-5)
        assert np.all(arrays["eo"][i, 0][~valid[0]] == 0)
        hidden.append(1 - observed.sum() / valid[0].sum())
    assert m["hidden_fraction"] == pytest.approx(np.mean(hidden)) and abs(m["hidden_fraction"] - 0.8) < 0.01
    ds = ShardDataset(out)
    assert ds.patch_ids[3] == expected_ids[3] and torch.equal(ds[3]["x"], torch.from_numpy(arrays["x"][3]))
    for f in out.rglob("*.npy"):
        np.load(f, allow_pickle=False)


def test_write_split_shards_takes_a_per_level_mask(patch_set: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (C,H,W) mask is A per level: here the surface unobserved, level 1 the tracks mask."""
    import depthdif.data.occlusion as occlusion

    def deep_only(*args: object, **kwargs: object) -> np.ndarray:
        observed = make_mask(*args, **kwargs)  # type: ignore[arg-type]
        return np.stack([np.zeros_like(observed), observed])

    monkeypatch.setattr(occlusion, "make_mask", deep_only)
    cfg = {"mode": "tracks", "fraction": 0.8, "seed": 5, "n_tracks": 2, "sample_every": 2}
    out = patch_set["out"] / "deep" / "train"
    write_split_shards(patch_set["index"], patch_set["stats"], patch_set["files"], "deep", cfg, "train", 3, out)
    arrays, m = load_arrays(out), read_manifest(out)
    a, valid = arrays["x_valid"].astype(bool), arrays["y_valid"].astype(bool)
    assert not a[:, 0].any() and a[:, 1].any() and np.all(a <= valid)
    assert np.array_equal(arrays["x"][:, 1][a[:, 1]], arrays["y"][:, 1][a[:, 1]]) and np.all(arrays["x"][:, 0] == 0)
    ocean = valid[:, 0]
    share = (a[:, 1] & ocean).sum(axis=(1, 2)) / ocean.sum(axis=(1, 2))  # positions observed at any level
    assert m["observed_fraction"] == pytest.approx(share.mean()) and m["observed_fraction"] > 0


def test_write_split_shards_errors(patch_set: dict) -> None:
    cfg = {"mode": "pixel", "fraction": 0.9, "seed": 0}
    args = (patch_set["index"], patch_set["stats"], patch_set["files"], "px", cfg)
    with pytest.raises(NoPatchesError, match=r"'val'.*patches\.split\.fractions.*block_px"):
        write_split_shards(*args, "val", 4, patch_set["out"] / "val")
    assert not (patch_set["out"] / "val").exists()
    with pytest.raises(DataError, match="2015-02"):
        write_split_shards(patch_set["index"], patch_set["stats"], patch_set["files"][:1], "px", cfg, "test", 4,
                           patch_set["out"] / "test")
    with pytest.raises(ConfigError, match="argo_paths"):
        write_split_shards(*args[:4], {"mode": "argo", "fraction": 0.9, "seed": 0, "argo_paths": []}, "test", 4,
                           patch_set["out"] / "test")


def test_write_split_shards_argo(patch_set: dict, real_data_dir: Path) -> None:
    cfg = {"mode": "argo", "fraction": 0.9, "seed": 1, "argo_paths": [str(real_data_dir / "argo" / "*_prof.nc")]}
    out = patch_set["out"] / "argo" / "test"
    summary = write_split_shards(
        patch_set["index"], patch_set["stats"], patch_set["files"], "argo", cfg, "test", 4, out
    )
    assert summary["n"] == 2 and abs(summary["hidden_fraction"] - 0.9) < 0.01
    arrays = load_arrays(out)
    assert np.all(arrays["x_valid"] <= arrays["y_valid"]) and arrays["x_valid"][:, 0].sum() > 0
