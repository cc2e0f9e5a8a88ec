"""Shared helpers of the bench/ scripts: config, model and batch builders, timing, tables.

Benchmarks print ratios measured in ONE run: both sides are timed in the same process (or
in fresh subprocesses of one run), interleaved round by round (A B A B ...). The headline
ratio is the median over rounds of the per-round ratio (A and B of a round run back to back,
so load from other jobs mostly cancels); each side's best and median round are shown too.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # runs from a checkout without the editable install too
    sys.path.insert(0, str(ROOT / "src"))

from depthdif.config import load_config  # noqa: E402

if TYPE_CHECKING:  # torch is imported lazily: the extraction benches measure RSS without it
    import torch

    from depthdif.diffusion import ConditionalUNet, NoiseSchedule

DEFAULT_CONFIG = ROOT / "config" / "config.yaml"
PRODUCTION_CONFIG = ROOT / "config" / "glorys.yaml"


# --- arguments / environment ------------------------------------------------------------


def parser(description: str, *, device: bool = True) -> argparse.ArgumentParser:
    """ArgumentParser with the flags every bench shares (--quick, --threads, --device)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: finishes in seconds (smoke test)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    if device:
        p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply --threads, check --device; returns the torch device."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    name = getattr(args, "device", "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return torch.device(name)


def machine_line(device: torch.device | None = None) -> str:
    """One line describing where the numbers come from (CPU count, load, torch, device)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = (f"machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
            f"load avg {load:.2f} at start, python {platform.python_version()}")
    torch = sys.modules.get("torch")
    if torch is not None:  # not imported by the extraction benches
        line += f", torch {torch.__version__} with {torch.get_num_threads()} threads"
        if device is not None and device.type == "cuda":
            line += f", GPU {torch.cuda.get_device_name(device)}"
    return line


# --- config and model -------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file with the schema's defaults filled in."""
    return load_config(path)


def build_net(model_cfg: Mapping[str, Any], channels: int) -> tuple[ConditionalUNet, NoiseSchedule, int]:
    """ConditionalUNet + NoiseSchedule as the workflow builds them; returns (net, schedule, cond channels)."""
    from depthdif.diffusion import ConditionalUNet, ModelSettings, NoiseSchedule, condition_channels

    model = ModelSettings.from_cfg(model_cfg)  # the validated model section, typed
    cond = condition_channels(channels, model.conditioning.eo, model.conditioning.mask_channels)
    bb, diff = model.backbone, model.diffusion
    net = ConditionalUNet(
        channels, cond, channels, dim=bb.dim, dim_mults=bb.dim_mults, attention=bb.attention, film=bb.film,
        dropout=bb.dropout,
    )
    return net, NoiseSchedule(diff.timesteps, diff.schedule), cond  # type: ignore[arg-type]


def fake_batch(
    n: int, channels: int, size: int, *, eo: bool = True, hidden: float = 0.9, seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """A batch with the ShardDataset item layout: smooth-ish normalised fields, a land corner,
    iid observations hiding `hidden` of the ocean."""
    import torch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    land = ((yy + xx) < size // 6).float()[None, None].expand(n, 1, size, size)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 6.28
    y = torch.sin(xx / 5.0 + phase) + torch.cos(yy / 7.0) + 0.1 * torch.randn(n, channels, size, size, generator=g)
    valid = (1 - land).expand(n, channels, size, size).contiguous()
    observed = (torch.rand(n, 1, size, size, generator=g) > hidden).float() * valid
    y = y * valid
    batch = {
        "y": y.float(), "y_valid": valid, "x": (y * observed).float(), "x_valid": observed,
        "land": land.contiguous(), "coords": torch.rand(n, 4, generator=g), "index": torch.arange(n),
    }
    if eo:
        batch["eo"] = (y[:, :1] + 0.1 * torch.randn(n, 1, size, size, generator=g)) * (1 - land)
    return {k: v.to(device) for k, v in batch.items()}


# --- timing -----------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(cases: Mapping[str, Callable[[], Any]], rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Run every case once per round, in order, `rounds` times; seconds per call of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def best(times: Sequence[float]) -> float:
    return min(times)


def median(times: Sequence[float]) -> float:
    return statistics.median(times)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Plain-text table (str() of every cell; floats to 4 significant digits)."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def ratio_line(name: str, value: float, goal: float | None = None, *, kind: str = "≤") -> str:
    """`RATIO <name> = 1.03x (goal ≤ 1.10x: met)`; the line the docs and smoke test read."""
    if goal is None:
        return f"RATIO {name} = {value:.3f}x"
    ok = value <= goal if kind == "≤" else value >= goal
    return f"RATIO {name} = {value:.3f}x (goal {kind} {goal:.2f}x: {'met' if ok else 'NOT met'})"


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- FLOPs and accelerator figures ------------------------------------------------------


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (torch.utils.flop_counter; matmul/conv only, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int | None = None, reps: int | None = None) -> float:
    """Measured dense n×n matmul rate (TFLOP/s) in `dtype`: the practical peak to compare with."""
    import torch

    n = n or (8192 if device.type == "cuda" else 1024)
    reps = reps or (20 if device.type == "cuda" else 3)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best_s = float("inf")
    for _ in range(3):  # best of 3 timings of `reps` products (other jobs only slow it down)
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best_s = min(best_s, time.perf_counter() - start)
    return 2 * n**3 * reps / best_s / 1e12


def largest_batch(try_batch: Callable[[int], None], start: int, cap: int) -> int:
    """Largest batch (doubling from `start`, at most `cap`) for which `try_batch` runs without CUDA OOM."""
    import torch

    ok, b = 0, start
    while b <= cap:
        try:
            try_batch(b)
            ok = b
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        b *= 2
    return ok


def as_numpy_seed(*parts: object) -> np.random.Generator:
    """numpy Generator seeded like the package does (depthdif.io.seed_for)."""
    from depthdif.io import seed_for

    return np.random.default_rng(seed_for("bench", *parts))
