"""dcgan sample quality on Fashion-MNIST after a stated budget, beside the real-data ceilings.

Trains the dcgan recipe (or --steps of it), then measures with the shipped evaluator: Frechet distance,
classifier score, class coverage, precision/recall; the ceilings are the same measures between real
training and test images. Also times one evaluation against the training time of 500 steps, which says
whether evaluating during training (train.eval_every) is cheap enough to leave on.

    python bench/quality.py [--steps 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from gancore.evaluate import applicable, evaluate, table
from gancore.loop import prepare, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        state = prepare("dcgan", {"device": "cpu", "seed": args.seed, "train": {"steps": args.steps}},
                        out=f"{tmp}/run")
        t = time.perf_counter()
        train(state, progress=False)
        train_s = time.perf_counter() - t
        metrics = applicable(state)
        evaluate(state, metrics)  # the first call also embeds the real reference images (cached after)
        t = time.perf_counter()
        results = evaluate(state, metrics)
        eval_s = time.perf_counter() - t
    print(f"dcgan recipe, {args.steps} steps, batch 64, seed {args.seed}: trained in {train_s:.0f} s on CPU")
    print(table(results))
    per_500 = train_s / args.steps * 500
    print(f"one evaluation: {eval_s:.1f} s; 500 training steps: {per_500:.1f} s "
          f"({100 * eval_s / per_500:.0f}% overhead at eval_every=500)")


if __name__ == "__main__":
    main()
