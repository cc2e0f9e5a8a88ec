"""Lightning training: outputs, exact resume, restart on config change, NaN guard, SIGTERM."""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

from depthdif.diffusion import DiffusionConfigError
from depthdif.errors import ConfigError, TrainingError
from depthdif.io import write_json
from depthdif.reconstruction import ModelSpec
from depthdif.training import build_model, merge_metrics, train
from depthdif.training import module as module_mod
from depthdif.training.callbacks import EMA
from depthdif.training.datamodule import ShardDataModule
from depthdif.training.module import DepthDifModule
from training_helpers import OBJECTIVES, model_cfg, splits, train_cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return splits(tmp_path_factory.mktemp("shards"))


def fit(
    shards: dict[str, Path], root: Path, objective: str = "standard", model: dict | None = None, **train: object
) -> dict:
    return train_fn(objective, model or model_cfg(), OBJECTIVES[objective], train_cfg(**train), shards, root)


def train_fn(objective: str, model: dict, objective_cfg: dict, tcfg: dict, shards: dict[str, Path], root: Path) -> dict:
    return train(objective, model, objective_cfg, tcfg, shards["train"], shards["val"], root / "out", root / "state")


def test_fit_writes_outputs_then_resume_continues_exactly(shards: dict[str, Path], tmp_path: Path) -> None:
    every4 = dict(val_every_n_steps=4, checkpoint_every_n_steps=4)
    first = fit(shards, tmp_path / "resumed", "ambient", max_steps=4, **every4)
    assert first["global_step"] == 4 and first["resumed_from"] is None

    out = tmp_path / "resumed" / "out"
    ckpt = torch.load(out / "model.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4 and ckpt["ema"] is True
    hp = ckpt["hparams"]
    assert (hp["objective"], hp["channels"], hp["cond_channels"], hp["has_eo"]) == ("ambient", 2, 5, True)
    assert len(hp["stats"]["mean"]) == 2 and len(hp["depth"]) == 2
    net, _ = build_model(ModelSpec.from_hparams(hp))
    net.load_state_dict(ckpt["state_dict"])  # strict: every key present
    assert sorted(p.name for p in (out / "val_examples").iterdir()) == ["step-000004.png"]

    second = fit(shards, tmp_path / "resumed", "ambient", max_steps=8, **every4)
    assert second["resumed_from"] == 4 and second["global_step"] == 8 and not second["restarted"]
    assert torch.load(out / "model.ckpt", weights_only=True)["global_step"] == 8
    runs = sorted((tmp_path / "resumed" / "state" / "logs").glob("version_*/metrics.csv"))
    assert [int(pd.read_csv(p)["step"].min()) for p in runs] == [0, 4]  # the 2nd run logs from step 4

    text = (out / "metrics.csv").read_text()
    assert text.count("step,") == 1  # one header
    metrics = pd.read_csv(out / "metrics.csv")
    train_rows = metrics.dropna(subset=["train/loss"])
    assert train_rows["step"].tolist() == list(range(8))
    assert metrics["val/rmse"].notna().sum() == 2  # validations at steps 4 and 8
    logged = {"lr", "train/observed_fraction", "train/kept_fraction", "train/field_std", "val/psnr", "val/ssim"}
    assert logged <= set(metrics)
    assert 0.0 < metrics["val/rmse"].dropna().iloc[-1] < 10.0  # degC on ~3 degC fields

    # an uninterrupted 8-step run ends with the same weights (epoch-boundary resume is exact)
    straight = fit(shards, tmp_path / "straight", "ambient", max_steps=8, **every4)
    assert straight["global_step"] == 8
    ref = torch.load(tmp_path / "straight" / "out" / "model.ckpt", weights_only=True)["state_dict"]
    got = torch.load(out / "model.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_config_change_starts_over(shards: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fit(shards, tmp_path, max_steps=2)
    again = fit(shards, tmp_path, max_steps=2)  # same config, already done: resumes at its end
    assert again["resumed_from"] == 2
    with caplog.at_level(logging.WARNING, logger="depthdif.training"):
        changed = fit(shards, tmp_path, max_steps=2, lr=1e-3)
    assert changed["restarted"] and changed["resumed_from"] is None and changed["global_step"] == 2
    assert "starting over" in caplog.text and "train.lr" in caplog.text
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv").dropna(subset=["train/loss"])
    assert metrics["step"].tolist() == [0, 1]  # the old runs' logs are gone
    assert len(list((tmp_path / "state" / "logs").glob("version_*"))) == 1


def nan_from_step(monkeypatch: pytest.MonkeyPatch, first: int) -> None:
    """Make the training loss NaN from global step `first` on."""
    real = module_mod.training_loss
    calls = {"train": 0}

    def nan_loss(model, schedule, batch, **kw):  # type: ignore[no-untyped-def]
        loss, logs = real(model, schedule, batch, **kw)
        if torch.is_grad_enabled():  # training steps only (preflight and validation run without grad)
            calls["train"] += 1
            if calls["train"] > first:
                loss = loss * float("nan")
        return loss, logs

    monkeypatch.setattr(module_mod, "training_loss", nan_loss)


# log_every_n_steps 50: the NaN flag is read on the host only before validations and checkpoints
@pytest.mark.parametrize("log_every", [1, 50])
def test_nan_loss_names_step_and_last_checkpoint(
    shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_every: int
) -> None:
    nan_from_step(monkeypatch, 3)
    with pytest.raises(TrainingError, match=r"non-finite training loss \(nan\) at step 3;") as err:
        fit(shards, tmp_path, max_steps=8, log_every_n_steps=log_every)
    assert str(tmp_path / "state" / "last.ckpt") in str(err.value)
    assert torch.load(tmp_path / "state" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not (tmp_path / "out" / "model.ckpt").exists()


def test_nan_loss_in_the_last_steps_is_never_saved_or_exported(
    shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nan_from_step(monkeypatch, 2)  # no log step, checkpoint or validation before the end: train end reads it
    with pytest.raises(TrainingError, match="at step 2; last good checkpoint: none yet"):
        fit(shards, tmp_path, max_steps=4, log_every_n_steps=50, val_every_n_steps=100, checkpoint_every_n_steps=100)
    assert not (tmp_path / "state" / "last.ckpt").exists()
    assert not (tmp_path / "out" / "model.ckpt").exists()


@pytest.mark.parametrize("log_every", [1, 50])
def test_diverging_lr_before_any_checkpoint(shards: dict[str, Path], tmp_path: Path, log_every: int) -> None:
    with pytest.raises(TrainingError, match="non-finite training loss .* at step 1; last good checkpoint: none yet"):
        fit(shards, tmp_path, objective="unet", max_steps=8, lr=1e30, grad_clip=0.0, checkpoint_every_n_steps=4,
            log_every_n_steps=log_every)
    assert not (tmp_path / "state" / "last.ckpt").exists()


def test_training_steps_wait_for_the_device_only_when_logging(
    shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As train() runs it (EMA, NaN guard, CSV log, progress bar), a step reads nothing back from the
    device except every log_every_n_steps steps and at the first batch of an epoch."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    from train_throughput import HostSyncs  # the counter the benchmark reports

    syncs, starts = HostSyncs(), []

    def on_train_batch_start(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        starts.append(sum(syncs.counts.values()))
        syncs.active = True
        syncs.watch(self.trainer.optimizers[0])

    monkeypatch.setattr(DepthDifModule, "on_train_batch_start", on_train_batch_start)
    with syncs, syncs.calls:  # 8 patches, batch 1: one epoch
        fit(shards, tmp_path, max_steps=8, batch_size=1, log_every_n_steps=3, val_every_n_steps=100,
            checkpoint_every_n_steps=100)
    per_step = [b - a for a, b in itertools.pairwise(starts)]  # steps 0..6
    assert [per_step[s] for s in (1, 3, 4, 6)] == [0, 0, 0, 0], per_step
    assert per_step[2] > 0 and per_step[5] > 0  # the CSV log and the NaN flag are read at steps 2 and 5


def test_ema_update_matches_averaged_model() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GroupNorm(2, 4))
    net.register_buffer("scale", torch.tensor([2.0]))
    ema = EMA(0.9)
    ema._average_model = AveragedModel(net, use_buffers=True, avg_fn=get_ema_avg_fn(0.9))
    reference = AveragedModel(net, use_buffers=True, avg_fn=get_ema_avg_fn(0.9))
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema._update_average(net)  # type: ignore[arg-type]
        reference.update_parameters(net)
        pairs = zip(ema._average_model.state_dict().values(), reference.state_dict().values())
        assert all(torch.equal(a, b) for a, b in pairs)
    assert int(ema._average_model.n_averaged) == 3


def test_ambient_epsilon_fails_before_training(shards: dict[str, Path], tmp_path: Path) -> None:
    model = model_cfg()
    model["diffusion"]["parameterization"] = "epsilon"
    with pytest.raises(ValueError, match="parameterization = 'x0'") as err:
        fit(shards, tmp_path, "ambient", model=model)
    assert isinstance(err.value, DiffusionConfigError)
    assert not (tmp_path / "state").exists()  # nothing touched


@pytest.mark.parametrize("section, key", [
    ("model", "diffusion.edm.p_mean"), ("objective", "further_drop_block_px"), ("train", "val_ddim_steps"),
])
def test_a_missing_key_fails_naming_it_before_training(
    shards: dict[str, Path], tmp_path: Path, section: str, key: str
) -> None:
    """train() takes the complete validated sections: a missing key is a ConfigError naming it, raised
    before anything is read or written (no section default stands in for the schema's)."""
    cfg = {"model": model_cfg(), "objective": dict(OBJECTIVES["ambient"]), "train": train_cfg()}
    *parents, last = key.split(".")
    node = cfg[section]
    for part in parents:
        node = node[part]
    del node[last]
    where = {"model": "model", "objective": "objectives.ambient", "train": "train"}[section]
    with pytest.raises(ConfigError, match=re.escape(f"config key '{where}.{key}' is missing")):
        train_fn("ambient", cfg["model"], cfg["objective"], cfg["train"], shards, tmp_path)
    assert not (tmp_path / "state").exists()


def test_sigterm_saves_last_and_exits_nonzero(
    shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = DepthDifModule.training_step

    def step_then_sigterm(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        if self.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning stops after this batch
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(DepthDifModule, "training_step", step_then_sigterm)
    with pytest.raises(SystemExit) as stop:
        fit(shards, tmp_path, max_steps=8, checkpoint_every_n_steps=100, val_every_n_steps=100)
    assert stop.value.code == 128 + signal.SIGTERM
    assert torch.load(tmp_path / "state" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert not (tmp_path / "out" / "model.ckpt").exists()

    monkeypatch.setattr(DepthDifModule, "training_step", real_step)
    resumed = fit(shards, tmp_path, max_steps=8, checkpoint_every_n_steps=100, val_every_n_steps=100)
    assert resumed["resumed_from"] == 3 and resumed["global_step"] == 8


def test_unet_baseline_with_film_turns_augment_off(
    shards: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="depthdif.training"):
        result = fit(shards, tmp_path, "unet", model=model_cfg(film=True), max_steps=2, augment=True)
    assert "train.augment is off" in caplog.text
    ckpt = torch.load(tmp_path / "out" / "model.ckpt", weights_only=True)
    assert ckpt["hparams"]["objective"] == "unet" and ckpt["ema"] is False and result["global_step"] == 2
    assert any(k.startswith("coord_mlp.") for k in ckpt["state_dict"])


def test_merge_metrics_drops_rows_an_interrupted_run_redid(tmp_path: Path) -> None:
    for version, (start, steps) in enumerate([(0, range(0, 6)), (4, range(4, 8))]):
        folder = tmp_path / f"version_{version}"
        folder.mkdir()
        curve = pd.DataFrame({"step": list(steps), "train/loss": [float(version)] * len(steps)})
        curve.to_csv(folder / "metrics.csv", index=False)
        write_json(folder / "run.json", {"start_step": start})
    merged = pd.read_csv(merge_metrics(tmp_path, tmp_path / "metrics.csv"))
    assert merged["step"].tolist() == list(range(8))
    assert merged["train/loss"].tolist() == [0.0] * 4 + [1.0] * 4


def test_datamodule_epoch_order_is_seeded(shards: dict[str, Path]) -> None:
    dm = ShardDataModule(shards["train"], shards["val"], batch_size=32, seed=3)
    order = {}
    for epoch in (0, 1, 0):
        dm.set_epoch(epoch)
        batches = list(dm.train_dataloader())
        assert len(batches) == 1 and len(batches[0]["index"]) == 8  # batch clamped to the 8 patches
        order.setdefault(epoch, []).append(batches[0]["index"].tolist())
    assert order[0][0] == order[0][1] != order[1][0]
    assert [b["index"].tolist() for b in dm.val_dataloader()] == [list(range(8))]


@pytest.mark.parametrize("objective", ["unet", "standard"])
def test_residual_model_exports_its_first_guess_when_validation_never_improves(
    shards: dict[str, Path], tmp_path: Path, objective: str
) -> None:
    """select=best_val with the OI frame: the starting weights (output layer at zero, i.e. the
    first guess) are a candidate; a run that only makes validation worse exports them."""
    model = {**model_cfg(), "first_guess": {**model_cfg()["first_guess"], "method": "oi", "covariance": "matern32",
                                            "max_fit_patches": 8, "residual_scale": "constant", "nugget": "fitted"}}
    # a destructive learning rate: every step makes the model worse than its start
    result = fit(shards, tmp_path / objective, objective, model=model, max_steps=4, lr=0.3,
                 select="best_val", val_every_n_steps=2)
    ckpt = torch.load(tmp_path / objective / "out" / "model.ckpt", weights_only=True)
    assert result["selected_step"] == ckpt["selected_step"] == 0 and ckpt["global_step"] == 4
    net, _ = build_model(ModelSpec.from_hparams(ckpt["hparams"]))
    net.load_state_dict(ckpt["state_dict"])
    assert float(net.final_conv.weight.abs().max()) == 0.0 and float(net.final_conv.bias.abs().max()) == 0.0
    assert ckpt["hparams"]["prior"]["length_scale"][0] > 0
    # a diffusion model keeps its best trained step for the spread of its members; the unet has none
    if objective == "standard":
        assert ckpt["spread_step"] in (2, 4)
        assert float(ckpt["spread_state_dict"]["final_conv.weight"].abs().max()) > 0.0
    else:
        assert "spread_state_dict" not in ckpt

    # with a sane rate the selection follows validation: a later step may win (never worse than step 0)
    ok = fit(shards, tmp_path / f"{objective}_ok", objective, model=model, max_steps=4, select="best_val",
             val_every_n_steps=2)
    assert ok["selected_step"] in (0, 2, 4)


def test_best_weights_needs_the_margin_to_leave_the_starting_weights() -> None:
    """BestWeights(margin): step 0 (the sanity check) sets the reference; a trained step wins only
    when its score is below start × (1 - margin); among those, the lowest wins."""
    from types import SimpleNamespace

    from depthdif.training.callbacks import BestWeights

    def run(margin: float, scores: list[tuple[int, float]]) -> BestWeights:
        best = BestWeights(margin)
        for step, loss in scores:
            net = torch.nn.Linear(1, 1)
            torch.nn.init.constant_(net.weight, float(step))
            module = SimpleNamespace(mean_val_loss=lambda loss=loss: loss, net=net)
            best.on_validation_epoch_end(SimpleNamespace(global_step=step), module)  # type: ignore[arg-type]
        return best

    scores = [(0, 1.0), (2, 0.99), (4, 0.985), (6, 1.2)]
    assert run(0.02, scores).best_step == 0  # 1.5 % better: within the margin
    assert run(0.0, scores).best_step == 4
    picked = run(0.02, [*scores, (8, 0.97), (10, 0.975)])
    assert picked.best_step == 8 and picked.best_loss == 0.97
    assert float(picked.best_state["weight"].item()) == 8.0  # type: ignore[index]
    restored = BestWeights(0.02)
    restored.load_state_dict(picked.state_dict())
    assert restored.start_loss == 1.0 and restored.best_step == 8
    # the best trained step is kept whatever the margin, and is the selected one once that wins
    kept = run(0.02, scores)
    assert kept.best_step == 0 and kept.trained_step == 4 and kept.trained_loss == 0.985
    assert float(kept.trained_state["weight"].item()) == 4.0  # type: ignore[index]
    assert picked.trained_step == 8 and picked.best_state is picked.trained_state
    assert restored.trained_step == 8
