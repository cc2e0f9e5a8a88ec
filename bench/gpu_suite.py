"""Every GPU measurement of docs/benchmarks.md in one process, under a time budget.

Runs, in order, printing as it goes (each stage is one of the bench scripts' own `main`,
so the numbers are the same as when run alone):

1. bf16 (fp32 on CPU) matmul rate of this device: the yardstick of the TFLOP/s below;
2. train_throughput --production: training samples/s of Lightning vs a bare loop, peak
   memory, achieved TFLOP/s vs the matmul rate, the largest batch that fits (bf16-mixed,
   channels_last; `--compile` adds torch.compile);
3. sample_speed --production: one DDIM step vs one forward, DDIM-50 patches/s with 8 members;
4. loader_throughput --production: DataLoader samples/s vs the training step's consumption.

A stage that would start after the budget is skipped (said so), one that overruns is
stopped (SIGALRM) and the suite goes on; the last line is `RATIO suite_seconds/budget`.

    .venv/bin/python bench/gpu_suite.py                     # on a CUDA machine, 8 min
    .venv/bin/python bench/gpu_suite.py --compile --budget 600
    .venv/bin/python bench/gpu_suite.py --quick --threads 1 # CPU, tiny sizes (the smoke test)
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


class StageTimeout(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    def _raise(signum: int, frame: object) -> None:
        raise StageTimeout

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def stages(args) -> list[tuple[str, str, list[str], float]]:
    """(title, bench module, its argv, share of the budget)."""
    common_args = ["--threads", str(args.threads)] if args.threads else []
    if args.quick:
        return [
            ("training throughput (tiny, CPU)", "train_throughput", ["--quick", *common_args], 0.4),
            ("sampling speed (tiny, CPU)", "sample_speed", ["--quick", *common_args], 0.3),
            ("loader vs step (tiny, CPU)", "loader_throughput", ["--quick", *common_args], 0.3),
        ]
    dev = ["--device", args.device]
    train = ["--production", *dev, "--precision", "bf16-mixed", "--channels-last", *common_args]
    sample = ["--production", *dev, "--precision", "bf16", "--channels-last", "--ensemble", "8", "--ddim-steps", "50",
              *common_args]
    if args.compile:
        train.append("--compile")
        sample.append("--compile")
    return [
        ("training throughput, production model, bf16-mixed, channels_last"
         + (", compiled" if args.compile else ""), "train_throughput", train, 0.5),
        ("DDIM sampling, production model, 8 members", "sample_speed", sample, 0.3),
        ("loader vs step, production shards", "loader_throughput", ["--production", *dev, *common_args], 0.2),
    ]


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole suite")
    p.add_argument("--compile", action="store_true", help="torch.compile in the training and sampling stages")
    args = p.parse_args()
    if not args.quick and args.device == "cpu":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = common.setup(args)
    start = time.monotonic()
    print(common.machine_line(device), flush=True)
    import torch

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rate = common.matmul_tflops(device, dtype, *((256, 3) if args.quick else ()))
    print(f"matmul rate ({'bf16' if dtype == torch.bfloat16 else 'fp32'}): {rate:.3g} TFLOP/s", flush=True)

    done, skipped = [], []
    for title, module, argv, share in stages(args):
        left = args.budget - (time.monotonic() - start)
        if left < 5:
            skipped.append(title)
            print(f"\n=== {title}: SKIPPED (budget of {args.budget:.0f} s spent)", flush=True)
            continue
        print(f"\n=== {title} ({module}.py {' '.join(argv)}), at most {min(left, share * args.budget * 2):.0f} s",
              flush=True)
        t0 = time.monotonic()
        saved = sys.argv
        sys.argv = [f"{module}.py", *argv]
        try:
            with alarm(min(left, share * args.budget * 2)):
                importlib.import_module(module).main()
            done.append(title)
        except StageTimeout:
            skipped.append(title)
            print(f"=== {title}: STOPPED after {time.monotonic() - t0:.0f} s (its share of the budget)", flush=True)
        finally:
            sys.argv = saved
            sys.stdout.flush()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"=== {title}: {time.monotonic() - t0:.0f} s", flush=True)
    total = time.monotonic() - start
    print(f"\nsuite: {len(done)} stages done, {len(skipped)} skipped/stopped, {total:.0f} s of {args.budget:.0f} s")
    print(common.ratio_line("suite_seconds/budget", total / args.budget, 1.0))


if __name__ == "__main__":
    main()
