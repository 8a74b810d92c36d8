"""Weight averaging (train.ema): the averaged generator against the live one, measured in the same runs.

Trains a plugin's recipe with ``train.ema`` (0.999 unless --set says otherwise) for each seed, then scores
the last step's live generator and the averaged one (batch-norm statistics re-estimated) with the same
metrics, side by side; prints each seed's figures, mean ± sd over seeds, and what averaging costs: the
time of one update per step against a training step, and of one re-estimate of the statistics.

    python bench/averaging.py [--plugin dcgan] [--seeds 3] [--first-seed 0] [--metric fashion-quality]
                              [--steps N] [--set key=value ...] [--progress]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_training_args, machine, mean_sd, median_time, overrides

from gancore.config import merge
from gancore.evaluate import applicable, evaluate
from gancore.loop import prepare, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plugin", default="dcgan")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to repeat one seed)")
    ap.add_argument("--metric", action="append", default=None, help="metrics to compare (default: fashion-quality)")
    add_training_args(ap)
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    over = merge({"train": {"ema": 0.999}}, overrides(args))
    figures: dict[str, dict[str, list[float]]] = {"live": {}, "averaged": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            cfg = merge({"device": "cpu", "seed": seed,
                         "train": {"eval_every": 0, "sample_every": 10**9, "checkpoint_every": 10**9}}, over)
            state = prepare(args.plugin, cfg, out=f"{tmp}/seed-{seed}")
            t0 = time.perf_counter()
            train(state, progress=args.progress)
            step_s = (time.perf_counter() - t0) / state.step
            average = state.average
            assert average is not None, "train.ema must be above 0 here"
            metrics = applicable(state, args.metric or ["fashion-quality"])
            results = {"averaged": evaluate(state, metrics)}
            state.average = None  # evaluate() then reads the live generator
            results["live"] = evaluate(state, metrics)
            state.average = average
            for which, r in results.items():
                for k, v in r.items():
                    figures[which].setdefault(k, []).append(v)
            # timed last: these extra updates move the average on, after it has been scored
            step, avg = state.step, average
            update_s = median_time(lambda: avg.update(step), 20)  # noqa: B023 (called at once)
            refresh_s = median_time(lambda: avg.refresh_norms(force=True), 3)  # noqa: B023
            shown = [k for k in results["live"] if not k.endswith(("_ceiling", "/classes"))]
            print(f"  seed {seed}: " + "; ".join(f"{k.split('/')[-1]} {results['live'][k]:.4g} live, "
                                               f"{results['averaged'][k]:.4g} averaged" for k in shown), flush=True)
            print(f"    averaging costs {update_s * 1e3:.2f} ms per step ({update_s / step_s:.1%} of a "
                  f"{step_s * 1e3:.0f} ms training step) and {refresh_s:.2f} s per re-estimate of the statistics",
                  flush=True)
    t = state.config["train"]
    print(f"\n{args.plugin}, {t['steps']} steps of batch {t['batch_size']}, train.ema {t['ema']} "
          f"(ema_start {t['ema_start']}), {args.seeds} seeds on CPU: mean ± sd")
    print(f"{'metric':<36}{'live generator':>18}{'averaged':>18}{'averaged - live':>18}")
    for k in shown:
        live, avg = figures["live"][k], figures["averaged"][k]
        diff = [a - b for a, b in zip(avg, live, strict=True)]
        print(f"{k:<36}{mean_sd(live, '.3f'):>18}{mean_sd(avg, '.3f'):>18}{mean_sd(diff, '.3f'):>18}")
    ceilings = {k: v[0] for k, v in figures["live"].items() if k.endswith("_ceiling")}
    if ceilings:
        print("real data (train against test): "
              + ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in ceilings.items()))


if __name__ == "__main__":
    main()
