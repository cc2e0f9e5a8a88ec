"""Every figure writes a non-empty PNG from tiny inputs; the numeric helpers behind them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from depthdif import plots
from depthdif.errors import DataError
from depthdif.eval.scoring import score_file, score_samples, summarize, write_scores
from depthdif.plots.ensembles import radial_spectrum
from depthdif.plots.reconstruction import example_indices
from depthdif.plots.style import METHOD_COLOURS
from eval_factory import write_tiny_samples
from shard_factory import make_shards

CFG = {"examples": 2, "dpi": 60}
AMBIENT = {"further_drop_prob": 0.3, "min_kept_observed_pixels": 4, "shared_spatial_mask": True,
           "mask_noisy_branch": False, "require_x0_parameterization": True,
           "further_drop_pattern": "pixels", "further_drop_block_px": 8}



def check_png(path: Path, *, land: bool = False) -> np.ndarray:
    """Non-trivial RGB image; with `land`, some pixels in the land grey (0.62 -> 158)."""
    assert path.is_file() and path.stat().st_size > 2000
    img = imread(path)[..., :3]
    assert img.shape[0] > 100 and img.shape[1] > 150
    assert (img < 0.95).any(axis=-1).mean() > 0.03  # something drawn, not a blank canvas
    if land:
        assert (np.abs(img - 0.62) < 0.01).all(axis=-1).sum() > 20
    return img


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("samples")
    return {
        "idw": write_tiny_samples(tmp / "idw.nc", method="idw", noise=0.8),
        "standard": write_tiny_samples(tmp / "standard.nc", method="standard", members=4, noise=0.5),
        "ambient": write_tiny_samples(tmp / "ambient.nc", method="ambient", members=3, noise=0.3),
    }


def test_dataset_example(tmp_path: Path) -> None:
    shards = make_shards(tmp_path, n=4, channels=2, size=16, split="test")
    plots.dataset_example(shards, tmp_path / "dataset.png", CFG)
    check_png(tmp_path / "dataset.png", land=True)


@pytest.mark.parametrize("has_eo", [True, False])
def test_ambient_walkthrough(tmp_path: Path, has_eo: bool) -> None:
    shards = make_shards(tmp_path, n=3, channels=2, size=16, has_eo=has_eo, fraction=0.7)
    plots.ambient_walkthrough(shards, tmp_path / "ambient.png", CFG, AMBIENT)
    img = check_png(tmp_path / "ambient.png", land=True)
    assert img.shape[1] > img.shape[0]


def test_reconstruction_grid_with_and_without_ensembles(tmp_path: Path, samples: dict[str, Path]) -> None:
    plots.reconstruction_grid(samples, tmp_path / "grid.png", CFG, scenario="tiny")
    img = check_png(tmp_path / "grid.png", land=True)
    plots.reconstruction_grid({"idw": samples["idw"]}, tmp_path / "grid_det.png", CFG, scenario="tiny")
    small = check_png(tmp_path / "grid_det.png", land=True)
    assert img.shape[1] > small.shape[1]  # one column per method


def test_reconstruction_grid_rejects_mismatched_patches(tmp_path: Path, samples: dict[str, Path]) -> None:
    other = write_tiny_samples(tmp_path / "other.nc", method="oi", n=2)
    with pytest.raises(DataError, match="different patches"):
        plots.reconstruction_grid({"idw": samples["idw"], "oi": other}, tmp_path / "x.png", CFG, scenario="tiny")


def test_metric_line_plots(tmp_path: Path) -> None:
    csvs = []
    for scenario, noise in (("pixel90", 0.3), ("tracks95", 0.6)):
        for method, members in (("idw", 0), ("ambient", 4)):
            nc = write_tiny_samples(tmp_path / f"{scenario}_{method}.nc", method=method, members=members,
                                    noise=noise, seed=1)
            csvs.append(tmp_path / f"{scenario}_{method}.csv")
            write_scores(score_samples(nc, scenario=scenario, method=method), csvs[-1])
    write_scores(summarize(csvs), tmp_path / "summary.csv")
    plots.metrics_vs_fraction(tmp_path / "summary.csv", {"pixel90": 0.9, "tracks95": 0.95}, tmp_path / "frac.png", CFG)
    plots.rmse_by_depth(tmp_path / "summary.csv", tmp_path / "depth.png", CFG)
    check_png(tmp_path / "frac.png")
    check_png(tmp_path / "depth.png")
    # an argo_profiles scenario has no fraction: left out, and a figure is still written
    plots.metrics_vs_fraction(tmp_path / "summary.csv", {"pixel90": 0.9, "tracks95": None}, tmp_path / "one.png", CFG)
    check_png(tmp_path / "one.png")
    plots.metrics_vs_fraction(tmp_path / "summary.csv", {"pixel90": None, "tracks95": None}, tmp_path / "no.png", CFG)
    assert (tmp_path / "no.png").stat().st_size > 1000
    with pytest.raises(DataError, match="tracks95"):
        plots.metrics_vs_fraction(tmp_path / "summary.csv", {"pixel90": 0.9}, tmp_path / "bad.png", CFG)


def test_training_curves_from_lightning_csv(tmp_path: Path) -> None:
    logs = {}
    for label, scale in (("tiny_standard", 1.0), ("tiny_ambient", 1.4)):
        rows = []
        for step in range(0, 200, 10):  # Lightning: metrics on separate rows, NaN elsewhere
            rows.append({"step": step, "train/loss": scale * np.exp(-step / 80), "val/loss": np.nan,
                         "val/rmse": np.nan, "lr": np.nan})
            if step % 50 == 0:
                rows.append({"step": step, "train/loss": np.nan, "val/loss": scale * np.exp(-step / 90),
                             "val/rmse": 0.5 - step / 1000, "lr": 2e-3})
        logs[label] = tmp_path / f"{label}.csv"
        pd.DataFrame(rows).to_csv(logs[label], index=False)
    plots.training_curves(logs, tmp_path / "curves.png", CFG)
    check_png(tmp_path / "curves.png")
    (tmp_path / "bad.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(DataError, match="bad.csv"):
        plots.training_curves({"bad": tmp_path / "bad.csv"}, tmp_path / "x.png", CFG)


def test_calibration_and_power_spectra(tmp_path: Path, samples: dict[str, Path]) -> None:
    files = {**samples, "oi": write_tiny_samples(tmp_path / "oi.nc", method="oi", noise=0.6, gaussian=0.6)}
    scores, cals = [], []
    for method, path in files.items():
        df, cal = score_file(path, scenario="tiny", method=method, rank_members=4)
        scores.append(tmp_path / f"{method}.csv")
        write_scores(df, scores[-1])
        cals.append(cal)
    write_scores(summarize(scores), tmp_path / "summary.csv")
    write_scores(pd.concat(cals, ignore_index=True), tmp_path / "calibration.csv")
    plots.calibration(tmp_path / "summary.csv", tmp_path / "calibration.csv", tmp_path / "calibration.png", CFG,
                      scenario="tiny", methods=list(files))
    plots.power_spectra(files, tmp_path / "spectra.png", CFG)
    img = check_png(tmp_path / "calibration.png")
    check_png(tmp_path / "spectra.png")
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    # only deterministic methods: the CRPS (= MAE) bars, no histogram
    write_scores(summarize([tmp_path / "idw.csv"]), tmp_path / "summary_idw.csv")
    plots.calibration(tmp_path / "summary_idw.csv", tmp_path / "calibration.csv", tmp_path / "no_ensemble.png", CFG,
                      scenario="tiny", methods=["idw"])
    check_png(tmp_path / "no_ensemble.png")
    with pytest.raises(DataError, match="other"):
        plots.calibration(tmp_path / "summary.csv", tmp_path / "calibration.csv", tmp_path / "x.png", CFG,
                          scenario="other")


def test_every_method_has_its_own_colour() -> None:
    from depthdif.config import load_config

    schema_methods = ["idw", "oi", "oi_eo", "unet", "standard", "ambient"]
    assert set(schema_methods) <= set(METHOD_COLOURS)
    assert len({METHOD_COLOURS[m] for m in schema_methods}) == len(schema_methods)
    default = load_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    assert set(default["evaluate"]["methods"]) <= set(schema_methods)


def test_radial_spectrum_peaks_at_the_wave_number() -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    field = np.cos(2 * np.pi * 4 * xx / 32)[None] + 10.0
    freq, power = radial_spectrum(field, np.ones(field.shape, bool))
    assert freq[np.argmax(power)] == pytest.approx(4 / 32)
    assert freq.min() == pytest.approx(1 / 32) and freq.max() <= 0.5


def test_example_indices_are_spread_and_unique() -> None:
    assert example_indices(10, 3).tolist() == [0, 4, 9]  # linspace 0, 4.5, 9 rounded half to even
    assert example_indices(2, 5).tolist() == [0, 1]
