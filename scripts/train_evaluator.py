"""Train the Fashion-MNIST evaluator CNN with a fixed seed and write its weights as safetensors.

    python scripts/train_evaluator.py [--epochs 15] [--device cuda] [--out gancore/builtin/weights/...]

Random 2-pixel shifts and horizontal flips as augmentation; AdamW with a one-cycle schedule. Prints the
test accuracy, which is stored in the file's metadata too.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gancore.builtin.datasets import ImageConfig, fashion_mnist
from gancore.builtin.evaluator import WEIGHTS, EvaluatorCNN


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.rand(n, generator=g, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=g, device=x.device).tolist()
    return pad[:, :, dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def accuracy(model: EvaluatorCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(x[i:i + 1000])[1].argmax(1) == y[i:i + 1000]).sum().item() for i in range(0, len(x), 1000))
    return correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(WEIGHTS))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    train, test = fashion_mnist(ImageConfig()), fashion_mnist(ImageConfig(), train=False)
    x, y = train.x.to(dev), train.y.to(dev)
    xt, yt = test.x.to(dev), test.y.to(dev)
    model = EvaluatorCNN().to(dev)
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator(device=dev).manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g, device=dev)
        for i in range(len(x) // args.batch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            loss = F.cross_entropy(model(augment(x[idx], g))[1], y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: test accuracy {accuracy(model, xt, yt):.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    acc = accuracy(model, xt, yt)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, args.out, metadata={"test_accuracy": f"{acc:.4f}", "epochs": str(args.epochs),
                                      "seed": str(args.seed), "script": "scripts/train_evaluator.py"})
    print(f"test accuracy {acc:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
