"""Cost of one DDIM sampling step against one denoiser forward at the same batch (goal ≤ 1.10×),
and DDIM-50 throughput (patches/s) with an ensemble of 8.

One DDIM step = the denoiser forward + the sampler's update (x0/ε, DDIM mean, clamping of
known pixels by re-noising). Members are batched: a forward holds patches × members rows.

    .venv/bin/python bench/sample_speed.py                  # config/config.yaml model, CPU
    .venv/bin/python bench/sample_speed.py --production     # glorys.yaml model (128 px, dim 64, 1-2-4-8)
    .venv/bin/python bench/sample_speed.py --production --device cuda --precision bf16 --channels-last
"""

from __future__ import annotations

import argparse
import contextlib
import math
from typing import Any

import torch

import common
from depthdif.diffusion import ddim_sample, ddim_timesteps, repeat_for_members


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(common.DEFAULT_CONFIG), help="model sizes and sample settings")
    p.add_argument("--production", action="store_true",
                   help="use config/glorys.yaml (128 px, dim 64, 1-2-4-8, attention, FiLM)")
    p.add_argument("--batch", type=int, default=None,
                   help="patches per forward (default: 16 CPU / 1 CPU production / sample.batch_size CUDA)")
    p.add_argument("--members", type=int, default=None,
                   help="ensemble members batched per patch (default: sample.members)")
    p.add_argument("--steps", type=int, default=None,
                   help="DDIM steps per timed call in the ratio (default 10; 3 CPU production)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 9; 3 CPU production)")
    p.add_argument("--ddim-steps", type=int, default=50, help="steps of the throughput run")
    p.add_argument("--ensemble", type=int, default=8, help="members of the throughput run")
    p.add_argument("--max-full-seconds", type=float, default=40.0,
                   help="run the full DDIM throughput only if it should take less; else extrapolate from the step time")
    p.add_argument("--precision", choices=["32", "bf16"], default="32", help="bf16: autocast (CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    return p.parse_args()


def main() -> None:
    args = parse()
    device = common.setup(args)
    cfg = common.load(common.PRODUCTION_CONFIG if args.production else args.config)
    sample = cfg["sample"]
    size, channels = int(cfg["patches"]["size"]), len(cfg["data"]["depth_levels"])
    heavy = args.production and device.type == "cpu"
    members = args.members or int(sample["members"])
    batch = args.batch or (int(sample["batch_size"]) if device.type == "cuda" else 1 if heavy else 16)
    steps = args.steps or (3 if heavy else 10)
    rounds = args.rounds or (3 if heavy else 9)
    ddim_steps, ensemble = args.ddim_steps, args.ensemble
    if args.quick:
        batch, members, steps, rounds, ddim_steps, ensemble = 2, 2, 2, 2, 4, 2
        size = min(size, 32)

    print(common.machine_line(device))
    net, schedule, cond_ch = common.build_net(cfg["model"], channels)
    net.eval().to(device)
    schedule.to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    fnet: Any = torch.compile(net) if args.compile else net
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
           else contextlib.nullcontext())
    parameterization = cfg["model"]["diffusion"]["parameterization"]
    clamp, eta = str(sample["clamp_known_pixels"]), float(sample["eta"])
    film = bool(cfg["model"]["backbone"]["film"])
    print(f"model: {size}x{size} px, {channels} channels, dim {cfg['model']['backbone']['dim']}, "
          f"dim_mults {cfg['model']['backbone']['dim_mults']}, attention {cfg['model']['backbone']['attention']}, "
          f"film {film}, T={schedule.timesteps}, {sum(p.numel() for p in net.parameters())/1e6:.2f} M params; "
          f"sampler ddim eta={eta} clamp={clamp} parameterization={parameterization}; precision {args.precision}, "
          f"channels_last {args.channels_last}, compile {args.compile}")

    def setup_batch(patches: int, k: int) -> tuple[Any, dict[str, torch.Tensor]]:
        """model_fn over patches × k member rows, as depthdif.training.module.reconstruct builds it."""
        b = common.fake_batch(patches, channels, size, eo=bool(cfg["model"]["conditioning"]["eo"]), device=device)
        parts = [b["x"], b["x_valid"]] + ([b["eo"]] if cfg["model"]["conditioning"]["eo"] else [])
        cond = repeat_for_members(torch.cat(parts, 1), k)
        coords = repeat_for_members(b["coords"], k) if film else None
        if args.channels_last:
            cond = cond.contiguous(memory_format=torch.channels_last)

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with amp:
                return fnet(x_t, t, cond, coords).float()

        known = {"known": repeat_for_members(b["x"], k), "known_mask": repeat_for_members(b["x_valid"], k)}
        return model_fn, known

    rows = batch * members
    shape = (rows, channels, size, size)
    model_fn, known = setup_batch(batch, members)
    times_t = ddim_timesteps(schedule.timesteps, steps).tolist()
    x_fixed = torch.randn(shape, device=device)
    gen = torch.Generator(device=device)

    @torch.no_grad()
    def forwards() -> None:
        for t in times_t:
            model_fn(x_fixed, torch.full((rows,), t, dtype=torch.long, device=device))

    @torch.no_grad()
    def ddim() -> None:
        gen.manual_seed(0)
        ddim_sample(model_fn, schedule, shape, steps=steps, eta=eta, parameterization=parameterization,
                    clamp=clamp, generator=gen, **known)

    common.interleave({"forward": forwards, "ddim": ddim}, 1, device)  # warm-up (and compile)
    times = common.interleave({"forward": forwards, "ddim": ddim}, rounds, device)
    n = len(times_t)
    fwd, step = common.best(times["forward"]) / n, common.best(times["ddim"]) / n
    per_round = [d / f for d, f in zip(times["ddim"], times["forward"])]
    # counted on the eager module (the flop counter does not see inside compiled graphs)
    b_fl = common.fake_batch(1, channels, size, eo=bool(cfg["model"]["conditioning"]["eo"]), device=device)
    with torch.no_grad(), amp:
        flops = rows * common.count_flops(lambda: net(
            x_fixed[:1],
            torch.zeros(1, dtype=torch.long, device=device),
            torch.zeros(1, cond_ch, size, size, device=device),
            b_fl["coords"] if film else None))
    print(f"\nbatch {batch} patches x {members} members = {rows} rows per forward; {n} steps per call, "
          f"{rounds} interleaved rounds (best / median per step)")
    print(common.table([
        ["denoiser forward", fwd * 1e3, common.median(times["forward"]) / n * 1e3, rows / fwd, flops / fwd / 1e12],
        [
            "DDIM step (forward + update + clamp)", step * 1e3, common.median(times["ddim"]) / n * 1e3, rows / step,
            flops / step / 1e12,
        ],
    ], ["case", "best ms", "median ms", "rows/s", "TFLOP/s"]))
    print(f"forward: {flops / 1e9:.2f} GFLOP ({flops / rows / 1e9:.3f} per row); per-round ratios "
          f"{' '.join(f'{r:.3f}' for r in per_round)}; best/best {step / fwd:.3f}")

    # DDIM throughput with an ensemble: measured when affordable, else extrapolated from the step time
    full_rows = batch * ensemble
    estimate = step / rows * full_rows * ddim_steps
    if estimate <= args.max_full_seconds or device.type == "cuda":
        fn8, known8 = setup_batch(batch, ensemble)
        shape8 = (full_rows, channels, size, size)

        @torch.no_grad()
        def full() -> None:
            gen.manual_seed(1)
            ddim_sample(fn8, schedule, shape8, steps=ddim_steps, eta=eta, parameterization=parameterization,
                        clamp=clamp, generator=gen, **known8)

        if device.type == "cuda":
            common.interleave({"full": full}, 1, device)
        seconds = common.best(common.interleave({"full": full}, 1 if estimate > 5 else 2, device)["full"])
        how = "measured"
    else:
        seconds, how = estimate, f"extrapolated from the step time (full run ~{estimate:.0f} s > --max-full-seconds)"
    print(f"\nDDIM-{ddim_steps}, ensemble of {ensemble}, {batch} patches per batch ({full_rows} rows): "
          f"{batch / seconds:.4g} patches/s ({seconds:.3g} s per batch, {how})")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    # headline: median of the per-round ratios (each pairs two calls run back to back, so load
    # from other jobs cancels; a best-of over each side alone can pair unlike rounds)
    print(common.ratio_line("ddim_step/forward (median of paired rounds)", common.median(per_round), 1.10))
    print(f"THROUGHPUT ddim{ddim_steps}_ens{ensemble}_patches_per_s = {batch / seconds:.4g}")
    assert math.isfinite(step / fwd)


if __name__ == "__main__":
    main()
