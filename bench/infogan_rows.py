"""Where InfoGAN's traversal rows change kind, for a trained run: along the sweep, and within each category.

Reads a run folder (``gan train --plugin infogan``), through the weights that sampling uses, and classifies its
images with the shipped Fashion-MNIST evaluator:
- per column of the traversal grids (noise draws 0 .. --grids - 1), the share of rows whose image there is of the
  row's most common class, for each continuous code swept from -2 to 2 and over its trained range (-1, 1): do the
  rows change kind only where the code leaves that range, or inside it as well?
- per category of code 0, the classes of --samples draws from the prior with that category: a category whose draws
  split between two classes must change kind somewhere as the other latents move, so the mean top-class share
  bounds what sweeping a code can keep pure; beside it, the same share for Q's categories on real test images.

    python bench/infogan_rows.py RUN [--grids 8] [--samples 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from gancore.builtin.evaluator import embed
from gancore.components import draw
from gancore.runs import open_run
from gancore.sampling import eval_mode, traversal_images
from gancore.state import load_data, to_device
from gancore_plugins.infogan.metrics import contingency, read_codes
from gancore_plugins.infogan.nets import codes_of


def classes_of(x: torch.Tensor) -> np.ndarray:
    return embed(x)[1].argmax(1).numpy()


def column_agreement(state, code: int, span: tuple[float, float], grids: int, cols: int = 10) -> np.ndarray:
    """Per column: the share of rows (over ``grids`` noise draws) whose image is of the row's majority class."""
    agree = []
    for seed in range(grids):
        x, _ = traversal_images(state, code=code, cols=cols, seed=seed, span=span)
        rows = classes_of(torch.from_numpy(x)).reshape(-1, cols)
        agree += [row == np.bincount(row).argmax() for row in rows]
    return np.mean(agree, axis=0)


def category_mix(state, samples: int) -> list[np.ndarray]:
    """For each category of code 0, the evaluator's class histogram of ``samples`` draws from the prior."""
    gen = torch.Generator(device=state.device).manual_seed(0)  # draw() samples on the run's device
    specs = {s.name: s for s in state.latent_specs}
    mixes = []
    for k in range(codes_of(state.latent_specs)[0][0]):
        latent = {name: draw(s, samples, gen, state.device) for name, s in specs.items()}
        latent["categorical"][:, 0] = k
        with eval_mode(state.nets.generator):
            x = state.nets.generator(**latent).float().cpu()
        mixes.append(np.bincount(classes_of(x), minlength=len(state.data_info["classes"])) / samples)
    return mixes


def real_mix(state) -> float:
    """Mean top-class share of Q's categories on the real test images (each category weighted by its size)."""
    test = load_data(state.manager, state.config, train=False)
    d = state.nets.discriminator
    with eval_mode(d):
        pred = read_codes(d, to_device(test.x, state.device, state.config)).numpy()
    return float(contingency(pred, test.y.numpy()).max(1).sum() / len(pred))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--grids", type=int, default=8, help="noise draws of the traversal grids")
    ap.add_argument("--samples", type=int, default=1000, help="prior draws per category")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    state = open_run(args.run)  # G's weight average where the run keeps one, as gan sample uses
    print(f"run {args.run}, step {state.step}")
    n_cont = codes_of(state.latent_specs)[1]
    print(f"\nshare of rows whose image is of the row's most common class, per column ({args.grids} noise draws):")
    for code in range(n_cont):
        for span in ((-2.0, 2.0), (-1.0, 1.0)):
            a = column_agreement(state, code, span, args.grids)
            print(f"  code {code}, {span[0]:+.0f} to {span[1]:+.0f}: " + " ".join(f"{v:.2f}" for v in a)
                  + f"   (mean {a.mean():.2f})")
    mixes = category_mix(state, args.samples)
    print(f"\nclasses of {args.samples} prior draws per category of code 0 (the evaluator's reading; top two):")
    names = state.data_info["classes"]  # the dataset's, in the evaluator's order (Fashion-MNIST's)
    for k, m in enumerate(mixes):
        top = np.argsort(m)[::-1][:2]
        print(f"  category {k}: " + ", ".join(f"{names[c]} {m[c]:.2f}" for c in top))
    share = float(np.mean([m.max() for m in mixes]))
    print(f"mean top-class share of G's categories: {share:.2f}; of Q's categories on the real test images: "
          f"{real_mix(state):.2f} (1.0: each category one kind)")


if __name__ == "__main__":
    main()
