"""Helpers shared by the benchmarks: timing medians, a machine description and the training options."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from gancore.config import merge, parse_sets


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    # the kernels torch picks for this CPU (AVX2, AVX512, ...) set the order of floating-point sums, and with it a
    # seed's figures: a run repeats on the same capability and thread count, not across them
    simd = torch.backends.cpu.get_cpu_capability()
    return f"{cpu} ({simd}), {torch.get_num_threads()} torch threads{gpu}; torch {torch.__version__}"


def mean_sd(xs: list[float], fmt: str = ".3f", scale: float = 1.0) -> str:
    """``mean ± sd`` of ``xs`` times ``scale`` (sd 0 for a single value), both in format ``fmt``."""
    xs = [x * scale for x in xs]
    return f"{statistics.mean(xs):{fmt}} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:{fmt}}"


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def add_training_args(ap: argparse.ArgumentParser) -> None:
    """``--steps``, ``--progress`` and ``--set``, as every training benchmark takes them."""
    ap.add_argument("--steps", type=int, default=None, help="steps (default: the recipe's)")
    ap.add_argument("--progress", action="store_true", help="training progress on stderr (losses, images/s, time left)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config overrides, key=value")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides those options ask for: ``--steps`` first, then each ``--set``."""
    return merge({"train": {"steps": args.steps}} if args.steps else {}, parse_sets(args.sets))
