"""Data-parallel training throughput: `gan train --nproc N` against one process, same recipe, same run.

Each configuration trains the dcgan recipe for --steps steps from scratch (global batch 64); the figure is
the median of the images/s that the run logged after its first log line (start-up excluded).

    python bench/ddp.py [--nproc 2] [--steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine


def throughput(nproc: int, steps: int, device: str, tmp: str) -> float:
    out = Path(tmp) / f"run-{nproc}"
    cmd = [sys.executable, "-m", "gancore_cli", "train", "--plugin", "dcgan", "--steps", str(steps), "--device",
           device, "--nproc", str(nproc), "--out", str(out), "--quiet", "--set", "train.log_every=25",
           "--set", f"train.sample_every={steps}", "--set", f"train.checkpoint_every={steps}"]
    subprocess.run(cmd, check=True, capture_output=True)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(x["images_per_s"] for x in lines[1:] if "images_per_s" in x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        one = throughput(1, args.steps, args.device, tmp)
        many = throughput(args.nproc, args.steps, args.device, tmp)
    print(f"dcgan recipe, global batch 64, {args.steps} steps on {args.device}")
    print(f"{'processes':<12}{'images/s':>10}")
    print(f"{'1 (ref)':<12}{one:>10.0f}")
    print(f"{args.nproc:<12}{many:>10.0f}")
    print(f"ratio: {many / one:.2f}x")


if __name__ == "__main__":
    main()
