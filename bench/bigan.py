"""BiGAN on Fashion-MNIST: what E(x) knows about the class, beside raw pixels and a random encoder.

For each seed, trains the bigan recipe (or --steps of it), then fits two probes on the 60k training
images and scores them on the 10k test images, for three feature sets measured side by side:
E(x) (the trained encoder), raw pixels, and the same encoder architecture randomly initialised.
- 1-NN: the label of the nearest training feature (Euclidean);
- linear probe: multinomial logistic regression on standardised features (L-BFGS, L2 1e-4).
Also the reconstruction error of G(E(x)) on test images. Prints mean ± sd over seeds.

    python bench/bigan.py [--seeds 3] [--first-seed 0] [--steps N] [--set key=value ...] [--pictures DIR] [--progress]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_training_args, machine, mean_sd, overrides

from gancore.averaging import averaged
from gancore.config import merge
from gancore.evaluate import applicable, evaluate
from gancore.images import save_grid
from gancore.loop import prepare, train
from gancore_plugins.bigan import reconstructions

TARGET = 10.0  # linear-probe points of E(x) above the random encoder
def pct(xs: list[float]) -> str:
    return mean_sd(xs, "5.1f", scale=100.0)


PUBLISHED = "BiGAN on MNIST (Donahue et al. 2016): 1-NN on E(x) 97.39%, about level with raw pixels"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to repeat one seed)")
    ap.add_argument("--device", default="cpu")
    add_training_args(ap)
    ap.add_argument("--pictures", type=Path, default=None, help="save each seed's reconstructions here")
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    over = overrides(args)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            cfg = merge({"device": args.device, "seed": seed,
                         "train": {"eval_every": 0, "sample_every": 10**9, "checkpoint_every": 10**9}}, over)
            state = prepare("bigan", cfg, out=f"{tmp}/seed-{seed}")
            train(state, progress=args.progress)
            train_s = time.perf_counter() - t0
            if args.pictures:
                with averaged(state):  # the networks that sampling and export use (train.ema)
                    recs = reconstructions(state)
                save_grid(recs, args.pictures / f"bigan-reconstructions-seed{seed}.png",
                          tuple(state.data_info["value_range"]), nrow=8)
            r = {k.split("/", 1)[1]: v for k, v in evaluate(state, applicable(state, ["bigan-probes"])).items()}
            for k, v in r.items():
                rows.setdefault(k, []).append(v)
            print(f"  seed {seed}: linear probe E(x) {r['encoder_linear']:.1%}, random {r['random_linear']:.1%}, "
                  f"pixels {r['pixels_linear']:.1%}; 1-NN E(x) {r['encoder_nn1']:.1%}, random "
                  f"{r['random_nn1']:.1%}, pixels {r['pixels_nn1']:.1%}; G(E(x)) MSE "
                  f"{r['reconstruction_mse']:.3f}; trained in {train_s:.0f} s", flush=True)
    t = state.config["train"]
    print(f"\nbigan recipe, {t['steps']} steps of batch {t['batch_size']} on {args.device}, {args.seeds} seeds; "
          f"test accuracy (%) on the 10k Fashion-MNIST test images, probes fitted on the 60k training images")
    print(f"{'features':<28}{'1-NN':>16}{'linear probe':>16}")
    for name, label in [("encoder", "E(x), trained"), ("random", "E(x), random init (ref)"),
                        ("pixels", "raw pixels (ref)")]:
        print(f"{label:<28}{pct(rows[f'{name}_nn1']):>16}{pct(rows[f'{name}_linear']):>16}")
    gap = [a - b for a, b in zip(rows["encoder_linear"], rows["random_linear"], strict=True)]
    to_pixels = [a - b for a, b in zip(rows["encoder_linear"], rows["pixels_linear"], strict=True)]
    print(f"linear probe, E(x) minus random encoder: {pct(gap)} points (target >= {TARGET:.0f}); "
          f"E(x) minus raw pixels: {pct(to_pixels)} points")
    print(f"G(E(x)) mean squared error on test images (pixels in [-1, 1]): "
          f"{mean_sd(rows['reconstruction_mse'])}")
    print(f"published: {PUBLISHED}")


if __name__ == "__main__":
    main()
