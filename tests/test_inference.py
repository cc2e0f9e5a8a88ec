"""inference.predict: samples netCDF round trip, clamping, batching of members, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from depthdif.diffusion import ConditionalUNet
from depthdif.errors import ConfigError, DataError
from depthdif.inference import load_checkpoint, predict
from depthdif.inflation import Inflation
from depthdif.samples import open_samples
from depthdif.training import train
from shard_factory import make_shards
from training_helpers import OBJECTIVES, SAMPLE, model_cfg, splits, train_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of a 2-step standard and unet fit, plus the test shard folder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trained")
    shards = splits(root)
    out = {"test": shards["test"], "root": root}
    for objective in ("standard", "unet"):
        tcfg = train_cfg(max_steps=2, val_every_n_steps=100)
        train(objective, model_cfg(), OBJECTIVES[objective], tcfg, shards["train"], shards["val"],
              root / objective, root / f"state_{objective}")
        out[objective] = root / objective / "model.ckpt"
    return out


def run(trained: dict[str, Path], tmp_path: Path, method: str = "standard", name: str = "s.nc", **cfg: object) -> Path:
    out = tmp_path / name
    predict(
        trained[method], trained["test"], {**SAMPLE, **cfg}, method=method, scenario="tiny", out_nc=out, device="cpu"
    )
    return out


def test_samples_netcdf_round_trip_with_exact_observed_pixels(trained: dict[str, Path], tmp_path: Path) -> None:
    ds = open_samples(run(trained, tmp_path))
    assert dict(ds.sizes) == {"patch": 8, "member": 3, "depth": 2, "y": 16, "x": 16}
    for name in ("thetao_pred", "thetao_std", "thetao_true", "thetao_members"):
        assert ds[name].attrs["units"] == "degC"
    assert ds["latitude"].dims == ("patch", "y") and ds["longitude"].dims == ("patch", "x")
    assert np.issubdtype(ds["time"].dtype, np.datetime64) and ds["patch_id"].values[0].startswith("2015-01_")
    np.testing.assert_allclose(ds["depth"].values, [0.5, 300.0])
    ckpt = load_checkpoint(trained["standard"])
    assert ds.attrs["config_hash"] == ckpt["config_hash"] and ds.attrs["checkpoint"] == str(trained["standard"])
    attrs = (ds.attrs["method"], ds.attrs["scenario"], ds.attrs["sampler"], ds.attrs["steps"])
    assert attrs == ("standard", "tiny", "ddim", 3)
    assert ds.attrs["n_members"] == 3

    observed = ds["observed"].values.astype(bool)
    valid = ds["valid"].values.astype(bool)
    truth, pred, std = ds["thetao_true"].values, ds["thetao_pred"].values, ds["thetao_std"].values
    assert observed.sum() > 0 and np.array_equal(pred[observed], truth[observed])  # exact, not approximately
    members = ds["thetao_members"].values
    assert np.array_equal(members[:, 1][observed], truth[observed])
    assert np.all(std[observed] == 0)
    hidden = valid & ~observed
    assert np.all(std[hidden] > 0)  # members differ where nothing is known
    np.testing.assert_allclose(pred[hidden], members.mean(1)[hidden], rtol=1e-5, atol=1e-4)
    assert 5.0 < np.nanmean(truth) < 25.0 and np.isnan(truth[~valid]).all() and np.isnan(pred[~valid]).all()


def test_without_clamping_observed_pixels_are_predicted(trained: dict[str, Path], tmp_path: Path) -> None:
    ds = open_samples(run(trained, tmp_path, clamp_known_pixels="none", save_members=False))
    observed = ds["observed"].values.astype(bool)
    assert not np.array_equal(ds["thetao_pred"].values[observed], ds["thetao_true"].values[observed])
    assert "thetao_members" not in ds and ds.attrs["n_members"] == 3


def test_diffusion_sampling_is_seeded(trained: dict[str, Path], tmp_path: Path) -> None:
    a = open_samples(run(trained, tmp_path, name="a.nc", save_members=False))
    b = open_samples(run(trained, tmp_path, name="b.nc", save_members=False))
    c = open_samples(run(trained, tmp_path, name="c.nc", save_members=False, seed=1))
    assert np.array_equal(a["thetao_pred"].values, b["thetao_pred"].values, equal_nan=True)
    assert not np.array_equal(a["thetao_pred"].values, c["thetao_pred"].values, equal_nan=True)


def test_members_are_batched_with_their_patches(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[int] = []
    forward = ConditionalUNet.forward

    def counting(self, x_t, t, cond, coords=None):  # type: ignore[no-untyped-def]
        rows.append(x_t.shape[0])
        return forward(self, x_t, t, cond, coords)

    monkeypatch.setattr(ConditionalUNet, "forward", counting)
    run(trained, tmp_path, batch_size=4, members=3, steps=2, save_members=False)
    assert rows == [12, 12, 12, 12]  # 2 batches of 4 patches × 3 members, 2 DDIM steps each


def test_ddpm_runs_every_timestep(trained: dict[str, Path], tmp_path: Path) -> None:
    ds = open_samples(run(trained, tmp_path, sampler="ddpm", members=2, clamp_known_pixels="overwrite"))
    assert (ds.attrs["sampler"], ds.attrs["steps"]) == ("ddpm", 20)
    observed = ds["observed"].values.astype(bool)
    assert np.array_equal(ds["thetao_pred"].values[observed], ds["thetao_true"].values[observed])


def test_unet_is_deterministic(trained: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**SAMPLE, "batch_size": 3}
    paths = [tmp_path / "u1.nc", tmp_path / "u2.nc"]
    for path in paths:
        predict(trained["unet"], trained["test"], cfg, method="unet", scenario="tiny", out_nc=path, device="cpu")
    a, b = open_samples(paths[0]), open_samples(paths[1])
    assert np.array_equal(a["thetao_pred"].values, b["thetao_pred"].values, equal_nan=True)
    valid = a["valid"].values.astype(bool)
    assert np.all(a["thetao_std"].values[valid] == 0) and "thetao_members" not in a
    assert (a.attrs["sampler"], a.attrs["n_members"]) == ("deterministic", 1)
    assert np.isfinite(a["thetao_pred"].values[valid]).all()


def test_shards_with_other_stats_are_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    other = make_shards(tmp_path, n=4, split="test", seed=5)
    with pytest.raises(DataError, match="normalisation stats differ"):
        predict(trained["standard"], other, SAMPLE, method="standard", scenario="tiny", out_nc=tmp_path / "x.nc")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(DataError, match="not a DepthDif model.ckpt"):
        load_checkpoint(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot load model checkpoint"):
        load_checkpoint(bad)


def test_inflation_widens_members_about_their_mean(trained: dict[str, Path], tmp_path: Path) -> None:
    """inflation s' = a_c s^p_c (s the member std in degC): p = 1 scales the deviations by a_c per level; p = 0.5
    (in degC, whatever the checkpoint's normalisation) gives s' = a sqrt(s); mean and clamped observations unchanged."""
    base = open_samples(run(trained, tmp_path, name="base.nc"))
    hidden = ~base["observed"].values.astype(bool) & base["valid"].values.astype(bool)
    observed = base["observed"].values.astype(bool)
    cases = {"scaled": (Inflation.multiplicative((2.0, 3.0)), lambda s, c: (2.0, 3.0)[c] * s),
             "power": (Inflation((0.5, 0.7), (0.5, 0.5), (0.1, 0.1), (1.0, 1.0), (1, 1), 4), lambda s, c: (0.5, 0.7)[c]
                       * np.sqrt(s))}
    for name, (inflation, expected) in cases.items():
        out = tmp_path / f"{name}.nc"
        predict(trained["standard"], trained["test"], SAMPLE, method="standard", scenario="tiny", out_nc=out,
                device="cpu", inflation=inflation)
        wide = open_samples(out)
        assert wide.attrs["inflation"] == inflation.describe() and base.attrs["inflation"] == "none"
        np.testing.assert_allclose(wide["thetao_pred"].values, base["thetao_pred"].values, atol=1e-4)
        for level in range(2):
            s0, s1 = base["thetao_std"].values[:, level], wide["thetao_std"].values[:, level]
            h = hidden[:, level]
            assert float(s0[h].mean()) > 0
            np.testing.assert_allclose(s1[h], expected(s0[h], level), rtol=2e-3, atol=1e-4)
        assert np.array_equal(wide["thetao_pred"].values[observed], base["thetao_true"].values[observed])
    assert Inflation.multiplicative((2.0, 3.0)).describe() == "a=2,p=1 a=3,p=1"
    with pytest.raises(ConfigError, match="deterministic"):
        predict(trained["unet"], trained["test"], SAMPLE, method="unet", scenario="tiny", out_nc=tmp_path / "u.nc",
                device="cpu", inflation=Inflation.multiplicative((2.0, 2.0)))


def test_first_guess_checkpoint_recentres_the_trained_members(trained: dict[str, Path], tmp_path: Path) -> None:
    """A checkpoint whose selected weights give one field for every member (the first guess won the
    selection) and that carries a trained step's weights: x_k = x̄_sel + (x_k' − x̄'), the selected mean
    with exactly the trained members' deviations."""
    ckpt = load_checkpoint(trained["standard"])
    flat = {k: (torch.zeros_like(v) if k.startswith("final_conv") else v) for k, v in ckpt["state_dict"].items()}
    torch.save({**ckpt, "state_dict": flat, "selected_step": 0}, tmp_path / "first_guess.ckpt")
    torch.save({**ckpt, "state_dict": flat, "selected_step": 0, "spread_state_dict": ckpt["state_dict"],
                "spread_step": 2}, tmp_path / "recentred.ckpt")

    def sample(ckpt_path: Path, name: str) -> xr.Dataset:  # one method name: the same member noise
        predict(ckpt_path, trained["test"], SAMPLE, method="standard", scenario="tiny", out_nc=tmp_path / name,
                device="cpu")
        return open_samples(tmp_path / name)

    plain, fg = sample(trained["standard"], "plain.nc"), sample(tmp_path / "first_guess.ckpt", "fg.nc")
    rc = sample(tmp_path / "recentred.ckpt", "rc.nc")
    hidden = ~rc["observed"].values.astype(bool) & rc["valid"].values.astype(bool)
    assert float(fg["thetao_std"].values[hidden].max()) == 0.0  # every member of the selected weights alike
    np.testing.assert_allclose(rc["thetao_pred"].values[hidden], fg["thetao_pred"].values[hidden], atol=1e-4)
    deviation = lambda ds: (ds["thetao_members"] - ds["thetao_pred"]).transpose("member", ...).values  # noqa: E731
    np.testing.assert_allclose(deviation(rc)[:, hidden], deviation(plain)[:, hidden], atol=1e-4)
    assert float(rc["thetao_std"].values[hidden].mean()) > 0.01
    np.testing.assert_allclose(rc["thetao_std"].values[hidden], plain["thetao_std"].values[hidden],
                               rtol=1e-3, atol=1e-4)
    observed = rc["observed"].values.astype(bool)
    assert np.array_equal(rc["thetao_pred"].values[observed], rc["thetao_true"].values[observed])
    assert "trained step 2" in rc.attrs["members_from"] and plain.attrs["members_from"] == "sampled"


def test_oi_increment_needs_the_models_first_guess(trained: dict[str, Path], tmp_path: Path) -> None:
    """The test models have no first guess (model.first_guess.method: none): their misfit has no OI to
    spread it, and sampling says so before any member is drawn; without clamping nothing is updated."""
    with pytest.raises(ConfigError, match="sample.final_update = 'oi_increment'.*first_guess.method: none"):
        run(trained, tmp_path, final_update="oi_increment")
    assert not (tmp_path / "s.nc").exists()
    ds = open_samples(run(trained, tmp_path, final_update="oi_increment", clamp_known_pixels="none"))
    assert ds.attrs["final_update"] == "none"
