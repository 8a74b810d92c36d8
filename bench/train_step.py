"""dcgan training speed: gancore's loop against a plain PyTorch loop of the identical architecture.

Both train the same DCGAN (same classes, same width, same batch, Fashion-MNIST held on the device)
and are timed interleaved in this one process, several rounds each; the figure is the median round.
The plain loop is the usual PyTorch DCGAN example loop: BCE-with-logits, Adam(2e-4, 0.5), a fresh noise
batch for D and G, and a `.item()` each step for logging.

    python bench/train_step.py [--steps 40] [--rounds 5] [--width 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from gancore.loop import prepare, train
from gancore_plugins.dcgan.nets import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig


def plain_loop(x_all: torch.Tensor, width: int, batch: int, device: torch.device):
    latent = prepare_latent()
    g = Generator(GeneratorConfig(width=width), latent, (1, 28, 28)).to(device)
    d = Discriminator(DiscriminatorConfig(width=width), (1, 28, 28)).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def run(steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(0, x_all.shape[0], (batch,), device=device)
            real = x_all[idx]
            fake = g(noise=torch.randn(batch, 100, device=device))
            opt_d.zero_grad()
            loss_d = F.binary_cross_entropy_with_logits(d(real).logits, ones) + \
                F.binary_cross_entropy_with_logits(d(fake.detach()).logits, zeros)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = F.binary_cross_entropy_with_logits(d(g(noise=torch.randn(batch, 100, device=device))).logits,
                                                        ones)
            loss_g.backward()
            opt_g.step()
            _ = loss_d.item(), loss_g.item()  # what the example logs every step

    return run


def prepare_latent():
    from gancore.components import LatentSpec

    return (LatentSpec("noise", (100,), "normal"),)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time gancore with train.compile (torch.compile)")
    ap.add_argument("--autocast", choices=["off", "bf16"], default="off", help="gancore's train.autocast")
    args = ap.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    with tempfile.TemporaryDirectory() as tmp:
        big = 10**9  # log, sample and checkpoint only at the end of each round

        def ours(compile_: bool):
            state = prepare("dcgan", {"device": args.device, "generator": {"width": args.width},
                                      "discriminator": {"width": args.width},
                                      "train": {"batch_size": args.batch, "steps": 1, "log_every": big,
                                                "sample_every": big, "checkpoint_every": big,
                                                "compile": compile_, "autocast": args.autocast}},
                            out=str(Path(tmp) / f"run-{compile_}"))

            def run(steps: int) -> None:
                state.config["train"]["steps"] = state.step + steps
                train(state, progress=False)

            return state, run

        state, eager = ours(False)
        loops = {"plain": plain_loop(state.data.x, args.width, args.batch, device), "gancore": eager}
        if args.compile:
            loops["compiled"] = ours(True)[1]
        for fn in loops.values():  # warm-up (and compiling)
            fn(3)
        speed: dict[str, list[float]] = {k: [] for k in loops}
        for _ in range(args.rounds):
            for name, fn in loops.items():
                sync()
                t = time.perf_counter()
                fn(args.steps)
                sync()
                speed[name].append(args.batch * args.steps / (time.perf_counter() - t))
    t_ours, t_plain = speed["gancore"], speed["plain"]
    g, p = statistics.median(t_ours), statistics.median(t_plain)
    ratios = [a / b for a, b in zip(t_ours, t_plain, strict=True)]
    print(f"machine: {machine()}")
    print(f"dcgan width {args.width}, batch {args.batch}, {args.steps} steps x {args.rounds} rounds on {device}, "
          f"autocast {args.autocast}")
    print(f"{'loop':<22}{'images/s (median)':>20}")
    print(f"{'plain PyTorch (ref)':<22}{p:>20.0f}")
    print(f"{'gancore':<22}{g:>20.0f}")
    if "compiled" in speed:
        c = statistics.median(speed["compiled"])
        print(f"{'gancore --compile':<22}{c:>20.0f}   ({c / g:.2f}x gancore eager)")
    print(f"ratio gancore / plain: {g / p:.2f} (median of per-round ratios {statistics.median(ratios):.2f}; "
          f"target >= 1.3)")


if __name__ == "__main__":
    main()
