"""Gumbel-softmax text GAN against maximum likelihood: the same generator trained both ways, side by side.

For each seed, trains in this one process:
- gan: the gumbel-text recipe (G relaxed by Gumbel-softmax, annealed temperature, CNN discriminator);
- mle: a fresh generator of the identical architecture and size, trained by teacher-forced maximum likelihood
  on the same data with the same batch size, for as many updates as the GAN's G received in all (its MLE
  pre-training included), sampled the same way (the Gumbel-max trick, an exact draw from its softmax).
Both are scored on 10k samples by ``text-quality``: validity (grammar parse rate, or share of dictionary
words), uniqueness, novelty, BLEU-4 against held-out data, self-BLEU-4. The held-out data scored the same
way is the reference row. Prints mean ± sd over seeds.

    python bench/gumbel_text.py [--data cfg|words] [--seeds 3] [--steps N] [--samples 10000] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, mean_sd

from gancore.averaging import averaged
from gancore.config import merge, parse_sets
from gancore.loop import prepare, train
from gancore.resolve import split_name
from gancore.sampling import decode_tokens
from gancore_plugins.gumbel_text.data import reference_sets
from gancore_plugins.gumbel_text.loss import nll
from gancore_plugins.gumbel_text.metrics import ids_of, text_scores

TARGETS = {"cfg": "validity >= 95% and uniqueness >= 50% (10k samples)",
           "words": "GAN validity not below MLE's"}
FIGURES = ("validity", "uniqueness", "novelty", "bleu4", "self_bleu4")


def train_mle(state, steps: int, lr: float, seed: int) -> torch.nn.Module:
    """A fresh generator of the run's architecture, trained by teacher-forced NLL on the run's data."""
    cfg = state.config
    torch.manual_seed(seed)
    g = state.manager.registries.generators.build(*split_name(cfg["generator"]), where="generator",
                                                  latent=state.latent_specs, data=state.data_info).to(state.device)
    opt = torch.optim.Adam(g.parameters(), lr=lr)
    gen = torch.Generator(device=state.device).manual_seed(seed)
    x, batch = state.data.x, cfg["train"]["batch_size"]
    g.train()
    for _ in range(steps):
        ids = x[torch.randint(0, len(x), (batch,), generator=gen, device=state.device)]
        noise = torch.randn(batch, *state.latent_specs[0].shape, generator=gen, device=state.device)
        value = nll(g, ids, noise)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return g


def samples_of(g: torch.nn.Module, state, n: int, seed: int) -> list[str]:
    gen = torch.Generator(device=state.device).manual_seed(seed)
    latent = {s.name: s for s in state.latent_specs}
    from gancore.components import draw

    g.eval()
    out = []
    with torch.no_grad():
        for start in range(0, n, 1000):
            m = min(1000, n - start)
            ids, _ = g.decode(**{k: draw(s, m, gen, state.device) for k, s in latent.items()})
            out += decode_tokens(ids_of(ids).tolist(), state.data_info["vocab"], state.data_info.get("level", "char"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cfg", choices=["cfg", "words"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="GAN steps (default: the recipe's)")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--mle-lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    print(f"machine: {machine()}")
    rows: dict[str, dict[str, list[float]]] = {"gan": {}, "mle": {}, "held-out data": {}}
    examples: dict[str, list[str]] = {}
    for seed in range(args.seeds):
        layer = merge({"seed": seed, "device": args.device, "data": {"name": args.data},
                       "train": {"eval_every": 0, "sample_every": 10**9, "log_every": 10**9}}, parse_sets(args.sets))
        if args.steps:
            layer = merge(layer, {"train": {"steps": args.steps}})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            state = prepare("gumbel-text", layer, out=str(Path(tmp) / "run"))
            train(state, progress=False)
            t_gan = time.perf_counter() - t0
            updates = state.config["train"]["steps"] + state.config["loss"]["pretrain_steps"]
            t0 = time.perf_counter()
            mle = train_mle(state, updates, args.mle_lr, seed)
            t_mle = time.perf_counter() - t0
            info = state.data_info
            train_set, held_out, dictionary = reference_sets(info)
            level, check = info.get("level", "char"), info.get("validity")
            with averaged(state):  # the generator that sampling and export use (train.ema)
                gan_samples = samples_of(state.nets.generator, state, args.samples, 1000 + seed)
            runs = {"gan": gan_samples,
                    "mle": samples_of(mle, state, args.samples, 1000 + seed)}
            half = len(held_out) // 2
            scores = {name: text_scores(s, train_set, held_out, level, check, dictionary)
                      for name, s in runs.items()}
            scores["held-out data"] = text_scores(held_out[:half], train_set, held_out[half:], level, check, dictionary)
            for name, sc in scores.items():
                for k, v in sc.items():
                    rows[name].setdefault(k, []).append(v)
            examples = {k: v[:8] for k, v in runs.items()}
            print(f"seed {seed}: gan {t_gan:.0f} s ({state.config['train']['steps']} steps, "
                  f"{state.config['loss']['pretrain_steps']} MLE pre-training), mle {t_mle:.0f} s ({updates} steps); "
                  + "; ".join(f"{n} " + " ".join(f"{k} {v:.3f}" for k, v in sc.items()) for n, sc in scores.items()),
                  flush=True)

    print(f"\n{args.data}: {args.samples} samples per model, {args.seeds} seed(s); target: {TARGETS[args.data]}")
    shown = [f for f in FIGURES if f in rows["gan"]]
    print(f"{'':14}" + "".join(f"{f:>18}" for f in shown))
    for name, figs in rows.items():
        print(f"{name:14}" + "".join(f"{mean_sd(figs[f], '.1f', 100) if f in figs else '':>18}" for f in shown))
    for name, ex in examples.items():
        print(f"{name} samples: " + "  ".join(repr(s) for s in ex))


if __name__ == "__main__":
    main()
