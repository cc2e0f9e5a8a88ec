"""Line plots: metrics vs occlusion fraction (Fig. 4), RMSE per depth (Fig. 5), training curves (Fig. 6)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import DataError
from depthdif.eval.scoring import read_summary
from depthdif.plots.style import DEGC, dpi_of, method_colour, new_figure, save_png


def metrics_vs_fraction(summary_csv: str | os.PathLike[str], scenario_fractions: Mapping[str, float | None],
                        out_png: str | os.PathLike[str], cfg: Mapping[str, Any]) -> None:
    """Overall (depth "all") RMSE and CRPS (fair ensemble CRPS, Gaussian CRPS, or the MAE of a
    deterministic method) against the hidden fraction of each scenario; one line per method,
    scenario names under the fraction ticks. Scenarios whose fraction is None (mode
    argo_profiles: real profiles, no set fraction) are left out of this figure."""
    summary = read_summary(summary_csv)
    overall = summary[summary["depth"] == "all"].copy()
    unknown = sorted(set(overall["scenario"]) - set(scenario_fractions))
    if unknown:
        raise DataError(f"{summary_csv}: scenarios {unknown} have no fraction in the config (scenarios.*.fraction)")
    if overall.empty:
        raise DataError(f"{summary_csv} has no depth 'all' rows; rerun the summarize rule")
    overall = overall[overall["scenario"].map(lambda s: scenario_fractions[s] is not None)]
    if overall.empty:
        fig = new_figure(5.0, 2.0)
        fig.text(0.5, 0.5, "no scenario with a set hidden fraction (all are argo_profiles)", ha="center")
        save_png(fig, out_png, dpi_of(cfg))
        return
    overall["fraction"] = overall["scenario"].map(lambda s: float(scenario_fractions[s]))
    panels = [("rmse", f"RMSE ({DEGC})")]
    if overall["crps"].notna().any():
        panels.append(("crps", f"CRPS ({DEGC})"))
    fig = new_figure(4.6 * len(panels) + 0.4, 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    ticks = overall.groupby("fraction")["scenario"].agg(lambda s: "/".join(sorted(set(s))))
    for ax, (col, label) in zip(axes, panels):
        for j, (method, rows) in enumerate(overall.groupby("method", sort=False)):
            rows = rows.dropna(subset=[col]).sort_values("fraction")
            if rows.empty:
                continue
            ax.plot(rows["fraction"], rows[col], marker="o", color=method_colour(method, j), label=method)
        ax.set_xticks(ticks.index, [f"{f:.2f}\n{name}" for f, name in ticks.items()], fontsize="small")
        ax.set_xlabel("hidden fraction of ocean pixels (scenario)")
        ax.set_ylabel(label)
        ax.set_title(f"{col.upper()} on hidden pixels, all depths")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_png(fig, out_png, dpi_of(cfg))


def rmse_by_depth(summary_csv: str | os.PathLike[str], out_png: str | os.PathLike[str],
                  cfg: Mapping[str, Any]) -> None:
    """RMSE per depth level (depth downwards on the y axis), one panel per scenario, one line per method."""
    summary = read_summary(summary_csv)
    levels = summary[summary["depth_m"].notna()]
    if levels.empty:
        raise DataError(f"{summary_csv} has no per-depth rows; rerun the summarize rule")
    scenarios = list(dict.fromkeys(levels["scenario"]))
    fig = new_figure(3.6 * len(scenarios) + 0.6, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(scenarios), sharey=True))
    for ax, scenario in zip(axes, scenarios):
        rows = levels[levels["scenario"] == scenario]
        for j, (method, part) in enumerate(rows.groupby("method", sort=False)):
            part = part.sort_values("depth_m")
            ax.plot(part["rmse"], part["depth_m"], marker="o", color=method_colour(method, j), label=method)
        ax.set_title(scenario)
        ax.set_xlabel(f"RMSE on hidden pixels ({DEGC})")
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    axes[0].set_ylabel("depth (m)")
    axes[0].invert_yaxis()  # shared y: surface on top for every panel
    axes[-1].legend(fontsize="small")
    save_png(fig, out_png, dpi_of(cfg))


LOSS_COLUMNS = {"train": "train/loss", "val": "val/loss"}


def _read_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read training log {path} ({exc}); rerun the train_model rule") from exc
    if "step" not in frame.columns:
        raise DataError(f"{path} has no 'step' column (Lightning CSV expected); rerun the train_model rule")
    return frame


def _series(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """(step, value) rows where `column` was logged (Lightning leaves NaN elsewhere)."""
    if column not in frame.columns:
        return frame.iloc[0:0][["step"]].assign(value=[])
    part = frame[["step", column]].dropna()
    return part.groupby("step", as_index=False)[column].mean().rename(columns={column: "value"})


def training_curves(metrics_csvs: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str],
                    cfg: Mapping[str, Any]) -> None:
    """Train (solid) and val (dashed, markers) loss vs step per run, plus val/rmse and lr when logged."""
    if not metrics_csvs:
        raise DataError("no training logs given; evaluate.methods has no learned method")
    logs = {label: _read_log(path) for label, path in metrics_csvs.items()}
    lr_col = {
        label: next((c for c in f.columns if c == "lr" or c.startswith("lr-")), None) for label, f in logs.items()
    }
    panels = ["loss"]
    if any(not _series(f, "val/rmse").empty for f in logs.values()):
        panels.append("val/rmse")
    if any(col and not _series(logs[label], col).empty for label, col in lr_col.items()):
        panels.append("lr")
    fig = new_figure(4.4 * len(panels) + 0.4, 3.8)
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels)))))
    colours = [f"C{j % 10}" for j in range(len(logs))]
    positive = True
    for colour, (label, frame) in zip(colours, logs.items()):
        for split, column in LOSS_COLUMNS.items():
            s = _series(frame, column)
            if s.empty:
                continue
            positive &= bool((s["value"] > 0).all())
            style = (
                {"linestyle": "-", "alpha": 0.8} if split == "train" else {"linestyle": "--", "marker": "o", "ms": 3}
            )
            axes["loss"].plot(s["step"], s["value"], color=colour, label=f"{label} {split}", **style)
        if "val/rmse" in axes:
            s = _series(frame, "val/rmse")
            axes["val/rmse"].plot(s["step"], s["value"], color=colour, marker="o", ms=3, label=label)
        if "lr" in axes and lr_col[label]:
            s = _series(frame, lr_col[label])
            axes["lr"].plot(s["step"], s["value"], color=colour, label=label)
    if not axes["loss"].lines:
        raise DataError(f"no train/loss or val/loss values in {list(metrics_csvs.values())}")
    if positive:
        axes["loss"].set_yscale("log")
    axes["loss"].set_ylabel("loss")
    axes["loss"].set_title("training (solid) and validation (dashed) loss")
    axes["loss"].legend(fontsize="x-small", ncols=1 + len(logs) // 4)
    if "val/rmse" in axes:
        axes["val/rmse"].set_ylabel("val/rmse (as logged)")
        axes["val/rmse"].set_title("validation RMSE")
        axes["val/rmse"].legend(fontsize="x-small")
    if "lr" in axes:
        axes["lr"].set_yscale("log")
        axes["lr"].set_ylabel("learning rate")
        axes["lr"].set_title("learning rate")
    for ax in axes.values():
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    save_png(fig, out_png, dpi_of(cfg))
