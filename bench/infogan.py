"""InfoGAN on Fashion-MNIST: how well the 10-way code clusters real images, over several seeds.

Trains the infogan recipe (or --steps of it) for each seed on CPU, then measures:
- categorical-code accuracy on the 10k real test images read by Q (Hungarian-matched to the classes), and NMI;
- sample Frechet distance and class coverage in the shipped evaluator's features, beside the real-data ceiling;
- traversal purity: the evaluator classifies each image of a continuous code's traversal grid; a row's purity
  is the share of its images in the row's most common class (1.0 = one kind of item per row), averaged over
  the grids of 4 noise draws, for the code swept from -2 to 2 and over its trained range (-1, 1), for each
  continuous code (code 0 is the headline); beside it, the same measure on rows of 10 real test images of one
  class (the evaluator's own confusions, e.g. shirt and pullover, keep that under 1);
- kinds across the rows: how many different classes the rows' majorities are, per grid (10 when each category
  draws its own kind; a collapsed G that draws one kind everywhere scores 1, and a purity of 1.0).
Published Fashion-MNIST clustering accuracies are printed beside the figures.

    python bench/infogan.py [--seeds 3] [--first-seed 0] [--steps N] [--set key=value ...] [--pictures DIR] [--progress]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_training_args, machine, mean_sd, overrides

from gancore.averaging import averaged
from gancore.builtin.evaluator import embed
from gancore.config import merge
from gancore.evaluate import evaluate
from gancore.loop import prepare, train
from gancore.sampling import traversal_images, traverse
from gancore.state import load_data
from gancore_plugins.infogan.nets import codes_of

PUBLISHED = [("ClusterGAN (Mukherjee et al. 2019)", "0.63"), ("InfoGAN (as reported in the literature)", "about 0.6")]
TARGET = 0.63


def row_classes(images: torch.Tensor, cols: int) -> tuple[list[float], list[int]]:
    """Each row's share of images in its most common class, and that class, as the shipped evaluator
    classifies them."""
    _, probs = embed(images)
    counts = [np.bincount(row) for row in probs.argmax(1).numpy().reshape(-1, cols)]
    return [c.max() / cols for c in counts], [int(c.argmax()) for c in counts]


def traversal_purity(state, code: int = 0, grids: int = 4,
                     span: tuple[float, float] = (-2.0, 2.0)) -> tuple[float, float]:
    """Mean row purity of continuous code ``code``'s traversal grids over ``span``, drawn with noise seeds
    0 .. grids-1 (one grid's 10 rows are too few to tell recipes apart), and the mean count of different
    classes among a grid's row majorities (purity alone scores a G that draws one kind everywhere at 1.0)."""
    purities, kinds = [], []
    for seed in range(grids):
        x, cols = traversal_images(state, code=code, cols=10, seed=seed, span=span)
        purity, majority = row_classes(torch.from_numpy(x), cols)
        purities += purity
        kinds.append(len(set(majority)))
    return float(np.mean(purities)), float(np.mean(kinds))


def real_purity(state, rows_per_class: int = 40, cols: int = 10) -> float:
    """The same measure on rows of ``cols`` real test images of one class: what a perfect traversal would score."""
    test = load_data(state.manager, state.config, train=False)
    rng = np.random.default_rng(0)
    y = test.y.numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(y == k), cols, replace=False)
                          for k in np.unique(y) for _ in range(rows_per_class)])
    return float(np.mean(row_classes(test.x[torch.from_numpy(idx)], cols)[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to repeat one seed)")
    add_training_args(ap)
    ap.add_argument("--pictures", type=Path, default=None, help="save each seed's traversal grids here")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    over = overrides(args)
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t = time.perf_counter()
            cfg = merge({"device": "cpu", "seed": seed,
                         "train": {"eval_every": 0, "sample_every": 10**9, "checkpoint_every": 10**9}}, over)
            state = prepare("infogan", cfg, out=f"{tmp}/seed-{seed}")
            train(state, progress=args.progress)
            train_s = time.perf_counter() - t
            codes = codes_of(state.latent_specs)[1]
            with averaged(state):  # the generator that sampling and export use (train.ema)
                if args.pictures:
                    for c in range(max(codes, 1)):  # code 0 keeps its old name (the README's picture); with no
                        # continuous code, code 0's grid still has its rows of categories
                        name = "infogan-traversal" + (f"-code{c}" if c else "")
                        traverse(state, args.pictures / f"{name}-seed{seed}.png", code=c)
                r = evaluate(state)
                row = {"accuracy": r["infogan-codes/accuracy"], "nmi": r["infogan-codes/nmi"],
                       "frechet": r["fashion-quality/frechet"],
                       "covered": r["fashion-quality/classes_covered"], "train_s": train_s}
                for c in range(max(codes, 1)):  # "purity" is code 0's, the headline
                    key = "purity" + (f"_code{c}" if c else "")
                    row[key], kinds = traversal_purity(state, code=c)
                    row[f"{key}_trained"] = traversal_purity(state, code=c, span=(-1.0, 1.0))[0]
                    if not c:
                        row["kinds"] = kinds
            ceiling = r["fashion-quality/frechet_ceiling"]
            for k, v in row.items():
                figures.setdefault(k, []).append(v)
            print(f"  seed {seed}: code accuracy {row['accuracy']:.3f}, NMI {row['nmi']:.3f}, traversal purity "
                  f"{row['purity']:.2f} ({row['purity_trained']:.2f} from -1 to 1; {row['kinds']:.1f} kinds), "
                  f"Frechet {row['frechet']:.1f}, "
                  f"{row['covered']:.0f}/10 classes, trained in {train_s:.0f} s" + "".join(
                      f"; code {c}: purity {row[f'purity_code{c}']:.2f} ({row[f'purity_code{c}_trained']:.2f})"
                      for c in range(1, codes)), flush=True)
    steps = state.config["train"]["steps"]
    print(f"\ninfogan recipe, {steps} steps of batch {state.config['train']['batch_size']}, {args.seeds} seeds "
          f"(mean ± sd), {statistics.mean(figures['train_s']):.0f} s of CPU training per seed")
    acc = figures["accuracy"]
    verdict = "met" if statistics.mean(acc) >= TARGET else "not met"
    print(f"  categorical-code accuracy  {mean_sd(acc)}   (target: mean >= {TARGET}, {verdict}; "
          f"seeds {min(acc):.3f} to {max(acc):.3f})")
    print(f"  NMI                        {mean_sd(figures['nmi'])}")
    print(f"  traversal row purity       {mean_sd(figures['purity'], '.2f')}   (rows of one real class: "
          f"{real_purity(state):.2f})")
    print(f"    code swept over (-1, 1)  {mean_sd(figures['purity_trained'], '.2f')}   (the range it was trained on)")
    print(f"    kinds across the rows    {mean_sd(figures['kinds'], '.1f')}   (of 10 rows; one kind everywhere: 1)")
    for c in range(1, codes):
        print(f"    code {c} instead           {mean_sd(figures[f'purity_code{c}'], '.2f')}   "
              f"(over (-1, 1): {mean_sd(figures[f'purity_code{c}_trained'], '.2f')})")
    print(f"  sample Frechet distance    {mean_sd(figures['frechet'], '.1f')}   (real data: {ceiling:.2f})")
    print(f"  classes covered of 10      {mean_sd(figures['covered'], '.1f')}")
    print("\npublished Fashion-MNIST clustering accuracy:")
    for name, acc in PUBLISHED:
        print(f"  {name:<42}{acc}")


if __name__ == "__main__":
    main()
