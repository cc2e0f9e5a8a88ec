"""ShardDataset / load_arrays: round trip, contract shapes, augmentation consistency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depthdif.dataset import ShardDataset, augment_params, patch_coords
from depthdif.errors import DataError
from depthdif.shards import load_arrays
from shard_factory import make_fields, make_shards

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shards(tmp_path_factory.mktemp("ds"), n=6, channels=3, size=12, shard_size=4)


def test_items_follow_contract_and_denormalise_to_patch_values(folder: Path) -> None:
    ds = ShardDataset(folder)
    raw = make_fields(6, 3, 12, 0)  # the degC fields make_shards normalised
    mean = np.array(ds.stats["mean"])[:, None, None]
    std = np.array(ds.stats["std"])[:, None, None]
    assert len(ds) == 6 and ds.channels == 3 and ds.has_eo
    assert [s["n"] for s in ds.manifest["shards"]] == [4, 2]
    for i in (0, 3, 4, 5):  # both shards, both edges
        item = ds[i]
        assert set(item) == {"y", "y_valid", "x", "x_valid", "land", "eo", "coords", "index"}
        assert item["y"].shape == (3, 12, 12) and item["y"].dtype == torch.float32
        assert item["land"].shape == (1, 12, 12) and item["eo"].shape == (1, 12, 12)
        assert item["coords"].shape == (4,) and item["index"].item() == i
        y, valid = item["y"].numpy(), item["y_valid"].numpy().astype(bool)
        np.testing.assert_allclose((y * std + mean)[valid], raw["y"][i][valid], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(valid, np.isfinite(raw["y"][i]))
        a = item["x_valid"].numpy().astype(bool)
        x = item["x"].numpy()
        assert a.sum() > 0 and np.all(x[~a] == 0) and np.array_equal(x[a], y[a])
        assert np.all(a <= valid) and np.all(y[~valid] == 0)
        assert np.array_equal(item["land"].numpy()[0].astype(bool), ~valid[0])
        assert np.all(item["eo"].numpy()[0][~valid[0]] == 0)
    assert ds[-1]["index"].item() == 5
    with pytest.raises(IndexError):
        ds[6]
    assert list(ds.patch_ids) == list(raw["patch_id"])
    np.testing.assert_array_equal(ds.time, raw["time"])
    np.testing.assert_allclose(ds.lat, raw["lat"])


def test_every_file_loads_without_pickle_and_load_arrays_concatenates(folder: Path) -> None:
    files = sorted(folder.rglob("*.npy"))
    assert len(files) == 2 * 10
    for f in files:
        np.load(f, allow_pickle=False)
    arrays = load_arrays(folder)
    assert arrays["y"].shape == (6, 3, 12, 12) and arrays["y"].dtype == np.float32
    assert arrays["x_valid"].dtype == np.uint8 and arrays["land"].shape == (6, 12, 12)
    assert arrays["patch_id"].dtype == np.dtype("<U64") and arrays["time"].dtype == np.int64
    ds = ShardDataset(folder)
    np.testing.assert_array_equal(arrays["x"][5], ds[5]["x"].numpy())


def test_augmentation_is_consistent_and_deterministic(folder: Path) -> None:
    plain = ShardDataset(folder)
    aug = ShardDataset(folder, augment=True, seed=3)
    seen = set()
    for i in range(len(plain)):
        a, p = aug[i], plain[i]
        turns, flip = augment_params(3, 0, i, square=True)
        seen.add((turns, flip))
        for name in ("y", "y_valid", "x", "x_valid", "land", "eo"):
            expect = torch.rot90(p[name], turns, dims=(-2, -1))
            expect = torch.flip(expect, dims=(-1,)) if flip else expect
            assert torch.equal(a[name], expect), name
        m = a["x_valid"].bool()
        assert torch.equal(a["x"], torch.where(m, a["y"], torch.zeros(())))
        assert torch.equal(a["land"][0].bool(), ~a["y_valid"][0].bool())
        assert torch.equal(a["coords"], p["coords"])
    assert len(seen) > 1  # not always the identity
    again = ShardDataset(folder, augment=True, seed=3)
    assert all(torch.equal(again[i]["y"], aug[i]["y"]) for i in range(len(aug)))
    aug.set_epoch(1)
    assert any(not torch.equal(aug[i]["y"], again[i]["y"]) for i in range(len(aug)))


def test_dataloader_batches(folder: Path) -> None:
    loader = torch.utils.data.DataLoader(ShardDataset(folder, augment=True), batch_size=4)
    batch = next(iter(loader))
    assert batch["y"].shape == (4, 3, 12, 12) and batch["coords"].shape == (4, 4)


def test_no_eo_folder(tmp_path: Path) -> None:
    ds = ShardDataset(make_shards(tmp_path, n=2, has_eo=False))
    assert not ds.has_eo and "eo" not in ds[0] and ds.manifest["stats"]["eo_mean"] is None


def test_patch_coords_sphere_and_year_phase() -> None:
    lat = np.array([[0.0, 0.0], [89.0, 91.0], [-30.0, -30.0]])
    lon = np.array([[179.5, -179.5], [0.0, 0.0], [90.0, 90.0]])
    # 2015-01-01, 2015-07-02T12:00 (mid-year, 182.5 of 365 days), 2016-12-31 (leap: 365/366)
    time = np.array([1420070400, 1420070400 + int(182.5 * 86400), 1451606400 + 365 * 86400])
    c = patch_coords(lat, lon, time)
    np.testing.assert_allclose(c[0, :3], [-1.0, 0.0, 0.0], atol=1e-6)  # dateline centre
    np.testing.assert_allclose(c[1, :3], [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(c[2, :3], [0.0, np.cos(np.pi / 6), -0.5], atol=1e-6)
    np.testing.assert_allclose(c[:, 3], [0.0, 0.5, 365 / 366], atol=1e-6)


def test_bad_folder_raises_data_error(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(DataError, match="manifest.json"):
        ShardDataset(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["n"] = 99
    (broken / "manifest.json").write_text(json.dumps(manifest))
    for s in manifest["shards"]:
        (broken / s["name"]).symlink_to(folder / s["name"])
    with pytest.raises(DataError, match="disagree"):
        ShardDataset(broken)


def test_pickled_dataset_reopens_maps(folder: Path) -> None:
    import pickle  # only to emulate spawn-started DataLoader workers

    ds = ShardDataset(folder)
    ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the arrays are not in the pickle
    assert torch.equal(pickle.loads(blob)[4]["y"], ds[4]["y"])
