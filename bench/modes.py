"""Mode collapse on 2-D mixtures: the gan2d recipe over several seeds, beside the published figures.

Protocol (PacGAN, VEEGAN): ring = 8 Gaussians at radius 1, sigma 0.01; grid = 25 Gaussians at
{-4,-2,0,2,4}^2, sigma 0.05; 100k training points; 2500 samples evaluated; a sample is high quality
within 3 sigma of its nearest mode; a mode is captured when a high-quality sample is nearest to it.

    python bench/modes.py [--seeds 5] [--first-seed 0] [--datasets ring grid] [--set generator.hidden=256 ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, mean_sd

from gancore.config import merge, parse_sets
from gancore.evaluate import evaluate
from gancore.loop import prepare, train

PUBLISHED = {  # modes captured, % high quality (Lin et al. 2018, PacGAN, tables 2 and 3)
    "ring": [("PacGAN4", 7.9, 95.6)],
    "grid": [("PacGAN4", 24.8, 93.6), ("vanilla GAN", 17.3, 94.8)],
}
TARGET = {"ring": (8, 97.0), "grid": (25, 95.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to repeat one seed)")
    ap.add_argument("--datasets", nargs="+", default=["ring", "grid"])
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config overrides, key=value")
    args = ap.parse_args()
    over = parse_sets(args.sets)
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds in args.datasets:
            modes, hq, secs = [], [], []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                t = time.perf_counter()
                cfg = merge({"device": "cpu", "seed": seed, "data": {"name": ds},
                             "train": {"eval_every": 0, "sample_every": 10**9, "checkpoint_every": 10**9}}, over)
                state = prepare("gan2d", cfg, out=f"{tmp}/{ds}-{seed}")
                train(state, progress=False)
                r = evaluate(state)
                modes.append(r["modes/modes"])
                hq.append(r["modes/high_quality_pct"])
                secs.append(time.perf_counter() - t)
                print(f"  {ds} seed {seed}: {r['modes/modes']:.0f}/{r['modes/modes_total']:.0f} modes, "
                      f"{r['modes/high_quality_pct']:.1f}% high quality, reverse KL {r['modes/reverse_kl']:.3f}, "
                      f"{secs[-1]:.0f} s", flush=True)
            want_modes, want_hq = TARGET[ds]
            every = all(m >= want_modes and h >= want_hq for m, h in zip(modes, hq, strict=True))
            rows.append((ds, mean_sd(modes, ".1f"), mean_sd(hq, ".1f"), every, statistics.mean(secs)))
    print(f"\n{'data':<6}{'gancore modes':>16}{'high quality %':>17}{'target met, every seed':>25}{'s/seed':>8}")
    for ds, m, h, every, s in rows:
        want = TARGET[ds]
        print(f"{ds:<6}{m:>16}{h:>17}{('yes' if every else 'no') + f' ({want[0]}, >={want[1]:.0f}%)':>25}{s:>8.0f}")
    print("\npublished (same protocol):")
    for ds in args.datasets:
        for name, m, h in PUBLISHED[ds]:
            print(f"{ds:<6}{name:>16}{m:>10.1f} modes{h:>10.1f}% high quality")


if __name__ == "__main__":
    main()
