"""Samples/s of the Lightning training step (DepthDifModule in lightning.Trainer.fit) against a
bare PyTorch loop with the same model, depthdif.diffusion.training_loss, AdamW, grad clipping
and batches (goal ≤ 1.10×).

Both sides iterate the same DataLoader over in-memory, pre-collated batches and are timed
from the end of the warm-up steps to the end of the last step (Trainer set-up is excluded
and printed separately). On CUDA it also prints achieved TFLOP/s (FLOPs of one step from
torch.utils.flop_counter) against a measured bf16 matmul rate, peak memory and the largest
batch that fits (doubling).

    .venv/bin/python bench/train_throughput.py
    .venv/bin/python bench/train_throughput.py --production --device cuda --precision bf16-mixed \
        --channels-last --compile
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import logging
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, Dataset

import common
from depthdif.diffusion import training_loss
from depthdif.training.callbacks import EMA, NaNGuard
from depthdif.training.module import DepthDifModule, model_hparams
from depthdif.training.settings import TrainSettings


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(common.DEFAULT_CONFIG))
    p.add_argument("--production", action="store_true", help="config/glorys.yaml model (128 px, dim 64, 1-2-4-8)")
    p.add_argument("--objective", choices=["standard", "ambient", "unet"], default="standard")
    p.add_argument("--batch", type=int, default=None, help="default: train.batch_size (2 for --production on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20; 4 CPU production)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per round (default 3; 1 CPU production)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 2 CPU production)")
    p.add_argument("--precision", choices=["32", "bf16-mixed", "16-mixed"], default=None,
                   help="default: train.precision on CUDA ('auto' → bf16-mixed), 32 on CPU")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--no-production-case", action="store_true",
                   help="skip the Lightning case with EMA + CSV logging as train_model runs it")
    p.add_argument("--max-batch", type=int, default=4096, help="cap of the largest-batch search (CUDA)")
    return p.parse_args()


class Batches(Dataset):
    """`n` items cycling over a few pre-collated batches (DataLoader(batch_size=None))."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], n: int) -> None:
        self.batches, self.n = batches, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i % len(self.batches)]


class StepClock(L.Callback):
    """perf_counter after every training batch (synchronised on CUDA)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        common.sync(trainer.strategy.root_device)
        self.times.append(time.perf_counter())


class HostSyncs(TorchDispatchMode):
    """Counts what would make the host wait for the GPU on CUDA, on any device: reading a value
    (item/float/bool: `_local_scalar_dense`), data-dependent shapes (nonzero, masked_select,
    boolean-mask index), copies to the host (.cpu(), .tolist(), .numpy()) and tensors made from
    Python numbers on the training device (`torch.tensor(x, device=...)`, a blocking copy).

    Tensors that stay on the host on CUDA too are not counted: the optimizers' step counters
    (`watch`), the results of .cpu() and of torch.tensor(x) without a device, and whatever is
    computed from those alone. Use `with counter, counter.calls:` (the second mode sees the
    Python-level calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False
        self.counts: collections.Counter[str] = collections.Counter()
        self._host: dict[int, weakref.ref[torch.Tensor]] = {}
        self.calls = _HostCalls(self)

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        for state in optimizer.state.values():
            if "step" in state:
                self.mark(state["step"])

    def mark(self, t: torch.Tensor) -> None:
        self._host[id(t)] = weakref.ref(t)

    def on_host(self, t: Any) -> bool:
        ref = self._host.get(id(t)) if isinstance(t, torch.Tensor) else None
        return ref is not None and ref() is t

    def count(self, kind: str, tensor: Any = None) -> None:
        if self.active and not self.on_host(tensor):
            self.counts[kind] += 1

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in ("_local_scalar_dense", "nonzero", "masked_select"):
            self.count(name, args[0])
        elif name == "index" and any(i is not None and i.dtype == torch.bool for i in args[1]):
            self.count("bool-mask index", args[0])
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        if inputs and all(self.on_host(a) for a in inputs):
            for o in pytree.tree_leaves(out):
                if isinstance(o, torch.Tensor):
                    self.mark(o)
        return out


class _HostCalls(TorchFunctionMode):
    """The Python-level half of HostSyncs: host copies and torch.tensor(...)."""

    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        to_host = name == "cpu"  # not .to(device): on a CPU run it cannot be told from .to("cpu")
        if name in ("tolist", "numpy") or to_host:
            self.syncs.count(f".{name}()", args[0])
        out = func(*args, **kwargs)
        if name == "tensor":
            if kwargs.get("device") is None:
                self.syncs.mark(out)
            else:
                self.syncs.count("torch.tensor(device=)")
        elif to_host:
            out = out.clone() if out is args[0] else out  # on CUDA a new host tensor
            self.syncs.mark(out)
        return out


class StepSyncs(L.Callback):
    """Per-step totals of a HostSyncs mode, counted from the first step after `warmup`."""

    def __init__(self, mode: HostSyncs, warmup: int) -> None:
        self.mode, self.warmup, self._last = mode, warmup, 0
        self.per_step: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        total = sum(self.mode.counts.values())
        if self.mode.active:
            self.per_step.append(total - self._last)
        self._last = total
        self.mode.active = trainer.global_step >= self.warmup
        self.mode.watch(trainer.optimizers[0])

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.on_train_batch_start(trainer)
        self.mode.active = False  # not the teardown (module.cpu())


def rate(times: list[float], warmup: int, batch: int) -> float:
    """samples/s between the end of step `warmup` and the end of the last step."""
    return (len(times) - warmup) * batch / (times[-1] - times[warmup - 1])


def main() -> None:
    args = parse()
    device = common.setup(args)
    cfg = common.load(common.PRODUCTION_CONFIG if args.production else args.config)
    heavy = args.production and device.type == "cpu"
    size, channels = int(cfg["patches"]["size"]), len(cfg["data"]["depth_levels"])
    batch = args.batch or (2 if heavy else int(cfg["train"]["batch_size"]))
    steps = args.steps or (4 if heavy else 20)
    warmup = args.warmup or (1 if heavy else 3)
    rounds = args.rounds or (2 if heavy else 5)
    if args.quick:
        batch, steps, warmup, rounds, size = 4, 3, 1, 1, min(size, 32)
    # the preset's bf16-mixed is meant for GPUs: on CPU default to fp32 unless asked
    precision = args.precision or (str(cfg["train"]["precision"]) if device.type == "cuda" else "32")
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cuda" else "32"
    use_eo = bool(cfg["model"]["conditioning"]["eo"])
    manifest = {"channels": channels, "has_eo": use_eo, "size": size, "depth": cfg["data"]["depth_levels"],
                "stats": {"mean": [0.0] * channels, "std": [1.0] * channels, "eo_mean": 0.0, "eo_std": 1.0}}
    objective_cfg = cfg["objectives"][args.objective]
    hparams = model_hparams(args.objective, cfg["model"], objective_cfg, manifest)
    train_cfg = {**cfg["train"], "channels_last": args.channels_last, "compile": args.compile, "batch_size": batch}
    settings = TrainSettings.from_cfg(train_cfg)
    clip = settings.grad_clip
    print(common.machine_line(device))

    batches = [common.fake_batch(batch, channels, size, eo=use_eo, seed=s) for s in range(4)]
    loader = DataLoader(Batches(batches, warmup + steps), batch_size=None, shuffle=False,
                        pin_memory=device.type == "cuda")
    template = DepthDifModule(hparams, settings)  # the initial weights both sides start from
    print(f"model: {size}x{size} px, {channels} channels, dim {cfg['model']['backbone']['dim']}, dim_mults "
          f"{cfg['model']['backbone']['dim_mults']}, "
          f"{sum(p.numel() for p in template.net.parameters())/1e6:.2f} M params; "
          f"objective {args.objective}, batch {batch}, precision {precision}, channels_last {args.channels_last}, "
          f"compile {args.compile}, grad_clip {clip}")
    spec = template.spec  # the typed settings DepthDifModule rebuilt from hparams
    loss_kw = dict(objective=spec.objective, diffusion=spec.model.diffusion, conditioning=spec.model.conditioning)
    amp_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()

    def to_device(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        if args.channels_last:
            b = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in b.items()}
        return b

    def bare_state() -> tuple[torch.nn.Module, Any, torch.optim.Optimizer, torch.Generator]:
        module = copy.deepcopy(template).to(device)
        net: Any = module.net
        if args.compile:
            net.compile()
        opt = torch.optim.AdamW(
            net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        return net, module.schedule, opt, torch.Generator(device=device).manual_seed(0)

    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")

    def bare_step(
        net: Any, schedule: Any, opt: torch.optim.Optimizer, gen: torch.Generator, b: dict[str, torch.Tensor]
    ) -> None:
        with autocast():
            loss, _ = training_loss(net, schedule, b, generator=gen, **loss_kw)  # type: ignore[arg-type]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        scaler.step(opt)
        scaler.update()

    def bare() -> float:
        net, schedule, opt, gen = bare_state()
        times = []
        for b in loader:
            bare_step(net, schedule, opt, gen, to_device(b))
            common.sync(device)
            times.append(time.perf_counter())
        return rate(times, warmup, batch)

    setup_seconds: list[float] = []

    def lightning(production: bool, syncs: StepSyncs | None = None) -> Callable[[], float]:
        def run() -> float:
            module = copy.deepcopy(template)
            clock = StepClock()
            callbacks: list[L.Callback] = [clock] + ([syncs] if syncs else [])
            logger: Any = False
            if production:  # the per-step callbacks of depthdif.training.fit (checkpoints are every 200+ steps)
                every = settings.log_every_n_steps
                callbacks = [EMA(settings.ema_decay), NaNGuard(Path(tmp) / "last.ckpt"),
                             TQDMProgressBar(refresh_rate=every), *callbacks]
                logger = L.pytorch.loggers.CSVLogger(
                    tmp, name="logs", flush_logs_every_n_steps=settings.checkpoint_every_n_steps
                )
            trainer = L.Trainer(
                accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision,  # type: ignore[arg-type]
                max_steps=warmup + steps, logger=logger, enable_checkpointing=False, enable_progress_bar=production,
                enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks,
                gradient_clip_val=clip or None, log_every_n_steps=settings.log_every_n_steps,
            )
            start = time.perf_counter()
            with contextlib.ExitStack() as stack:
                if syncs:
                    stack.enter_context(syncs.mode)
                    stack.enter_context(syncs.mode.calls)
                trainer.fit(module, train_dataloaders=loader)
            setup_seconds.append(time.perf_counter() - start - (clock.times[-1] - clock.times[0]))
            return rate(clock.times, warmup, batch)
        return run


    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*validation_step.*")
    cases: dict[str, Callable[[], float]] = {
        "bare PyTorch loop": bare, "Lightning fit (logging/checkpoints off)": lightning(False)
    }
    if not args.no_production_case and args.objective != "unet":
        cases["Lightning fit as train_model (EMA, NaN guard, CSV log, progress bar)"] = lightning(True)
    results: dict[str, list[float]] = {name: [] for name in cases}
    peak_mem: dict[str, float] = {name: 0.0 for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        warm_net, warm_schedule, warm_opt, warm_gen = bare_state()  # allocator / oneDNN / cuDNN caches
        for b in list(loader)[: max(warmup, 2)]:
            bare_step(warm_net, warm_schedule, warm_opt, warm_gen, to_device(b))
        del warm_net, warm_opt
        for _ in range(rounds):
            for name, fn in cases.items():
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                results[name].append(fn())
                if device.type == "cuda":
                    peak_mem[name] = max(peak_mem[name], torch.cuda.max_memory_allocated(device) / 2**30)

    # host syncs per step (untimed: the dispatch mode itself is slow); the fit logs once in the
    # window when log_every_n_steps divides a step in it (default 20: step 19 of 23)
    sync_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, production in (("Lightning fit (logging/checkpoints off)", False),
                                 ("Lightning fit as train_model (EMA, NaN guard, CSV log, progress bar)", True)):
            if name not in cases:
                continue
            counter = StepSyncs(HostSyncs(), warmup)
            lightning(production, counter)()
            sync_rows.append((name, counter.per_step, counter.mode.counts))
        bare_mode = HostSyncs()
        net, schedule, opt, gen = bare_state()
        bare_counts = []
        with bare_mode, bare_mode.calls:
            bare_step(net, schedule, opt, gen, to_device(batches[0]))  # warm-up: creates the optimizer state
            bare_mode.active = True
            bare_mode.watch(opt)
            for b in batches[:3]:
                before = sum(bare_mode.counts.values())
                bare_step(net, schedule, opt, gen, to_device(b))
                bare_counts.append(sum(bare_mode.counts.values()) - before)
        sync_rows.insert(0, ("bare PyTorch loop", bare_counts, bare_mode.counts))

    # FLOPs of one training step = 3 × the loss forward (backward ≈ 2 × forward). Counting the
    # backward directly is wrong here: torch's flop counter ignores `groups` in the conv
    # backward formula, so each depthwise 7×7 conv's backward counts ~channels × too much.
    eager = copy.deepcopy(template).to(device)  # eager: the flop counter does not see inside compiled graphs
    net, schedule, gen = eager.net, eager.schedule, torch.Generator(device=device).manual_seed(0)
    b0 = to_device(batches[0])

    def loss_forward() -> None:
        with torch.no_grad(), autocast():
            training_loss(net, schedule, b0, generator=gen, **loss_kw)  # type: ignore[arg-type]

    flops = 3 * common.count_flops(loss_forward)
    matmul_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = common.matmul_tflops(device, matmul_dtype)
    rows = []
    for name, rates in results.items():
        best = max(rates)
        rows.append([name, best, common.median(rates), best * flops / batch / 1e12]
                    + ([peak_mem[name]] if device.type == "cuda" else []))
    print(f"\nbatch {batch}; {steps} timed + {warmup} warm-up steps per round; {rounds} interleaved rounds; "
          f"samples/s best / median over rounds")
    columns = ["case", "samples/s", "median", "TFLOP/s"] + (["peak GiB"] if device.type == "cuda" else [])
    print(common.table(rows, columns))
    print(f"one training step: {flops / 1e9:.2f} GFLOP (3 × forward) ({flops / batch / 1e9:.3f} per sample); measured "
          f"{'bf16' if matmul_dtype == torch.bfloat16 else 'fp32'} matmul rate {peak:.3g} TFLOP/s → "
          f"{rows[0][3] / peak:.1%} of it in the bare loop")
    print(f"Trainer set-up + teardown per fit (not in the rate): {common.median(setup_seconds):.2f} s")
    print(f"host syncs per training step on CUDA (counted ops; log_every_n_steps {settings.log_every_n_steps}):")
    for name, per_step, counts in sync_rows:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        print(f"  {name}: {' '.join(map(str, per_step))} over {len(per_step)} steps ({ops})")
    if device.type == "cuda":
        del eager, net

        def try_batch(n: int) -> None:
            tnet, tsched, topt, tgen = bare_state()
            big = to_device(common.fake_batch(n, channels, size, eo=use_eo))
            bare_step(tnet, tsched, topt, tgen, big)
            common.sync(device)

        print(f"largest batch that fits (doubling from {batch}, cap {args.max_batch}): "
              f"{common.largest_batch(try_batch, batch, args.max_batch)}")
    # headline: median over rounds of bare/lightning samples/s (= lightning/bare step time); each
    # round runs the cases back to back, so load from other jobs cancels in the pair
    bare_rates = results["bare PyTorch loop"]
    for name in list(cases)[1:]:
        tag = "lightning/bare" if "off" in name else "lightning_production/bare"
        goal = 1.10 if "off" in name else None
        paired = [b / r for b, r in zip(bare_rates, results[name])]
        print(f"{tag} per round: {' '.join(f'{r:.3f}' for r in paired)}; "
              f"best/best {max(bare_rates) / max(results[name]):.3f}")
        print(common.ratio_line(f"{tag} (step time, median of paired rounds)", common.median(paired), goal))
    print(f"THROUGHPUT train_samples_per_s = {max(results['Lightning fit (logging/checkpoints off)']):.4g}")


if __name__ == "__main__":
    main()
