"""save_shards / read_manifest: layout, dtypes, manifest, atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthdif.errors import DataError
from depthdif.shards import read_manifest, save_shards


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
    assert m["shards"] == [{"name": "shard-0000", "n": 2}, {"name": "shard-0001", "n": 2}, {"name": "shard-0002", "n": 1}]
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
