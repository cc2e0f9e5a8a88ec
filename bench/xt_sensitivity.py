"""Sensitivity of a trained denoiser's x0 estimate to x_t per noise level, ‖Δx̂0‖/‖Δx_t‖ on hidden pixels.

At fixed noise level and condition, x_t is perturbed by a small Δ (relative size --delta) on the
hidden pixels (valid & not observed); the table gives the ratio for the whole estimate (`total`),
for the network's own part (`branch` = x̂0 - skip·x_t: EDM's c_out·F_θ, or what the ε/v output
adds to the skip 1/√ᾱ resp. √ᾱ of x_t; = total for x0 prediction) and the ratio of the exact
denoiser of white Gaussian residuals with the batch's RMS (`white_ref`). A denoiser that
ignores x_t (every ensemble member lands on the conditional mean) has total ≈ 0 at every level.
See `depthdif.diffusion.diagnostics`.

    .venv/bin/python bench/xt_sensitivity.py results/models/tracks95/standard/model.ckpt results/shards/tracks95/val
    .venv/bin/python bench/xt_sensitivity.py CKPT SHARDS --levels 0 20 50 100 199 --patches 32
    .venv/bin/python bench/xt_sensitivity.py --quick      # two constructed denoisers, no checkpoint needed
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor, nn

import common
from depthdif.config import validate_config
from depthdif.diffusion import ModelSettings, NoiseSchedule, objective_from_cfg
from depthdif.diffusion.diagnostics import xt_sensitivity
from depthdif.params import merge
from depthdif.reconstruction import ModelSpec


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", help="model.ckpt of a diffusion objective (standard | ambient)")
    p.add_argument("shards", nargs="?", help="a shard folder (results/shards/<scenario>/val or test)")
    p.add_argument("--patches", type=int, default=32, help="patches of the folder used (the first N)")
    p.add_argument("--levels", type=float, nargs="+", default=None,
                   help="t (DDPM formulation) or σ (EDM) values; default: a spread over the schedule")
    p.add_argument("--delta", type=float, default=1e-2, help="‖Δx_t‖ relative to the RMS of x_t on hidden pixels")
    p.add_argument("--directions", type=int, default=4, help="random perturbation directions per level")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def table(rows: list[dict[str, float]], formulation: str) -> str:
    name = "sigma" if formulation == "edm" else "t"
    lines = [f"| {name} | σ (x0 units) | total ‖Δx̂0‖/‖Δx_t‖ | branch | white-prior ref |", "|---|---|---|---|---|"]
    for row in rows:
        level = f"{row['level']:g}"
        lines.append(f"| {level} | {row['sigma']:.3g} | {row['total']:.3g} | {row['branch']:.3g} | "
                     f"{row['white_ref']:.3g} |")
    return "\n".join(lines)


class _Toy(nn.Module):
    """x0 prediction of a toy model: `gain` · x_t (gain 1 uses x_t, gain 0 ignores it)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        return self.gain * x_t + cond[:, : x_t.shape[1]]


def quick(args: argparse.Namespace) -> None:
    """Two constructed x0-predicting denoisers on a random batch: identity in x_t vs independent of it."""
    gen = torch.Generator().manual_seed(args.seed)
    shape = (4, 2, 16, 16)
    y = torch.randn(shape, generator=gen)
    observed = (torch.rand(shape, generator=gen) < 0.1).float()
    batch = {"y": y, "y_valid": torch.ones(shape), "x": observed * y, "x_valid": observed}
    defaults = validate_config({})  # the schema's sections: a DDPM x0 model of 20 steps without EO
    model = merge(defaults["model"], {"diffusion": {"timesteps": 20}, "conditioning": {"eo": False}})
    hp = ModelSpec(objective=objective_from_cfg("standard", defaults["objectives"]["standard"]),
                   model=ModelSettings.from_cfg(model), channels=2, cond_channels=4, prior=None, dihedral=False)
    schedule = NoiseSchedule(20)
    ratios = {}
    for name, gain in (("uses_xt", 1.0), ("ignores_xt", 0.0)):
        rows = xt_sensitivity(_Toy(gain), schedule, batch, hp, levels=[0, 19], generator=gen)
        print(f"{name}:\n{table(rows, 'ddpm')}\n")
        ratios[name] = rows[0]["total"]
    print(f"RATIO xt_sensitivity_uses_xt/low_noise = {ratios['uses_xt']:.3f}x  (goal ≈ 1)")
    print(f"RATIO xt_sensitivity_ignores_xt/low_noise = {ratios['ignores_xt']:.3f}x  (goal ≈ 0)")


def main() -> None:
    args = parse()
    device = common.setup(args)
    print(common.machine_line(device))
    if args.quick:
        quick(args)
        return
    if not args.checkpoint or not args.shards:
        raise SystemExit("give a model.ckpt and a shard folder (or --quick)")
    from torch.utils.data import DataLoader

    from depthdif.dataset import ShardDataset
    from depthdif.inference import load_checkpoint
    from depthdif.reconstruction import build_model, build_prior

    ckpt = load_checkpoint(args.checkpoint)
    hp = ModelSpec.from_hparams(ckpt["hparams"])
    if hp.deterministic:
        raise SystemExit(f"{args.checkpoint} is the deterministic unet: nothing to diffuse")
    net, schedule = build_model(hp)
    net.load_state_dict(ckpt["state_dict"])
    net.to(device).eval()
    schedule.to(device)
    prior = build_prior(hp)
    if prior is not None:
        prior.to(device)
    dataset = ShardDataset(args.shards)
    batch = next(iter(DataLoader(dataset, batch_size=min(args.patches, len(dataset)), shuffle=False)))
    batch = {k: v.to(device) for k, v in batch.items()}
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rows = xt_sensitivity(net, schedule, batch, hp, prior=prior, levels=args.levels, delta=args.delta,
                          directions=args.directions, generator=gen)
    diffusion = hp.model.diffusion
    formulation = diffusion.formulation
    print(f"{args.checkpoint}: objective {hp.objective.name}, formulation {formulation}, parameterization "
          f"{diffusion.parameterization}; {len(batch['y'])} patches of {args.shards}, δ = {args.delta}, "
          f"{args.directions} directions")
    print(table(rows, formulation))
    low, high = rows[0], rows[-1]
    for tag, row in (("lowest_noise", low), ("highest_noise", high)):
        value = row["total"] if math.isfinite(row["total"]) else float("nan")
        print(f"RATIO xt_sensitivity_total/{tag} = {value:.3f}x  (level {row['level']:g})")


if __name__ == "__main__":
    main()
