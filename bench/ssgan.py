"""Semi-supervised Fashion-MNIST: the ssgan discriminator against the same network trained on the labels alone.

For each labels-per-class count and each label draw (the run's seed picks the balanced labelled subset),
trains in this one process, side by side:
- ssgan: the recipe (n+1-class D on labelled + unlabelled + generated images, G by feature matching);
- supervised only: the identical D architecture (same noise layers, weight norm, optimizer, learning rate
  and its schedule, batch and step count) trained with cross-entropy on the same labelled images and nothing else.
Both are scored by test-set accuracy (10k images). Prints mean ± sd over the draws.

    python bench/ssgan.py [--labels 10 50 100] [--draws 3] [--first-draw 0] [--steps N] [--device cpu] [--progress]
                          [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_training_args, machine, mean_sd, overrides

from gancore.averaging import WeightAverage, averaged
from gancore.config import merge
from gancore.loop import lr_factor, prepare, train
from gancore.resolve import split_name
from gancore.sampling import eval_mode
from gancore.state import load_data, to_device
from gancore_plugins.ssgan.metrics import predict

TARGET = 10.0  # points above supervised-only at 10 labels per class
REFERENCE = "a small CNN on the labels alone reaches about 72% (10 per class) and 82% (100 per class) here"


def accuracy(d: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with eval_mode(d):
        return float((predict(d, x) == y.cpu()).float().mean()) * 100


def supervised_only(state, x_test, y_test, seed: int) -> tuple[float, float]:
    """A fresh D of the run's architecture, trained on the run's labelled subset with the run's optimizer.

    Returns its test accuracy after the GAN's number of updates, and the best of ten points along the way:
    with so few labels it overfits, and picking its best point by the test set flatters the reference. Where the
    run averages D's weights (``train.ema_nets``), the reference is averaged alike and read through its average."""
    cfg = state.config
    torch.manual_seed(seed)
    d = state.manager.registries.discriminators.build(
        *split_name(cfg["discriminator"]), where="discriminator", latent=state.latent_specs,
        data=state.data_info).to(state.device)
    t = cfg["train"]
    opt = torch.optim.Adam(d.parameters(), lr=t["lr_d"], betas=(t["beta1"], t["beta2"]))
    lx, ly = state.labelled
    gen = torch.Generator(device=state.device).manual_seed(seed)
    d.train()
    average = None
    if t["ema"] and "discriminator" in t["ema_nets"]:
        average = WeightAverage({"discriminator": d}, t["ema"], sampler=state.sampler, batch_size=t["batch_size"],
                                start=t["ema_start"])
    read = average.copies["discriminator"] if average is not None else d
    updates = t["steps"] * t["d_steps"]  # as many D updates as the GAN's, on batches of the same size
    points = []
    for n in range(1, updates + 1):
        for group in opt.param_groups:  # the run's learning-rate schedule too, if it has one
            group["lr"] = t["lr_d"] * lr_factor((n - 1) // t["d_steps"], t["steps"], t["lr_decay"], t["lr_decay_start"])
        i = torch.randint(0, len(lx), (t["batch_size"],), generator=gen, device=state.device)
        loss = F.cross_entropy(d(lx[i]).logits, ly[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None and n % t["d_steps"] == 0:  # as the run's: once per G step
            average.update(n // t["d_steps"])
        if n % max(1, updates // 10) == 0 or n == updates:
            points.append(accuracy(read, x_test, y_test))
    return points[-1], max(points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, nargs="+", default=[10, 50, 100], help="labels per class")
    ap.add_argument("--draws", type=int, default=3, help="label draws (seeds) per count")
    ap.add_argument("--first-draw", type=int, default=0, help="draws run from here (to repeat one draw)")
    ap.add_argument("--device", default="cpu")
    add_training_args(ap)
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    over = overrides(args)
    rows: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for per_class in args.labels:
            for seed in range(args.first_draw, args.first_draw + args.draws):
                t0 = time.perf_counter()
                cfg = merge({"device": args.device, "seed": seed, "data": {"labels_per_class": per_class},
                             "train": {"eval_every": 0, "sample_every": 10**9, "checkpoint_every": 10**9}}, over)
                state = prepare("ssgan", cfg, out=f"{tmp}/l{per_class}-s{seed}")
                train(state, progress=args.progress)
                gan_s = time.perf_counter() - t0
                test = load_data(state.manager, state.config, train=False)
                x_test, y_test = to_device(test.x, state.device, state.config), test.y
                live = accuracy(state.nets.discriminator, x_test, y_test)
                with averaged(state):  # D's weight average, where the run keeps one (train.ema_nets)
                    gan = accuracy(state.nets.discriminator, x_test, y_test)
                live_note = f", last step's weights {live:.1f}%" if live != gan else ""
                t1 = time.perf_counter()
                sup, best = supervised_only(state, x_test, y_test, seed)
                sup_s = time.perf_counter() - t1
                r = rows.setdefault(per_class, {"gan": [], "sup": [], "best": []})
                r["gan"].append(gan)
                r["sup"].append(sup)
                r["best"].append(best)
                print(f"  {per_class:>3} labels/class, draw {seed}: ssgan {gan:.1f}%{live_note} ({gan_s:.0f} s), "
                      f"supervised only {sup:.1f}% (best point {best:.1f}%; {sup_s:.0f} s)", flush=True)
    t = state.config["train"]
    print(f"\nssgan recipe, {t['steps']} steps of batch {t['batch_size']} on {args.device}, {args.draws} label "
          f"draws; test accuracy (%) on the 10k Fashion-MNIST test images")
    print(f"{'labels/class':>12}{'supervised only (ref)':>24}{'its best point':>16}{'ssgan':>16}"
          f"{'gain':>14}{'gain over best':>16}")
    for per_class, r in rows.items():
        gains = [g - s for g, s in zip(r["gan"], r["sup"], strict=True)]
        over_best = [g - s for g, s in zip(r["gan"], r["best"], strict=True)]
        sup, best, gan, gain, over = (mean_sd(x, "5.1f") for x in (r["sup"], r["best"], r["gan"], gains, over_best))
        print(f"{per_class:>12}{sup:>24}{best:>16}{gan:>16}{gain:>14}{over:>16}")
    print(f"target: >= {TARGET:.0f} points above supervised only at 10 labels per class (gain columns: points, "
          f"mean ± sd over draws). For scale: {REFERENCE}.")


if __name__ == "__main__":
    main()
