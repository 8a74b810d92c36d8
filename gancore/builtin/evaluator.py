"""The Fashion-MNIST evaluator: a small CNN whose 128-d penultimate features and class probabilities give
image metrics without Inception weights. Trained by ``scripts/train_evaluator.py`` (fixed seed); its
weights ship in this package as safetensors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

WEIGHTS = Path(__file__).parent / "weights" / "fashion_mnist_cnn.safetensors"


class EvaluatorCNN(nn.Module):
    """conv-bn-relu x2, pool, conv-bn-relu x2, pool, fc 128 (the feature layer), fc 10."""

    def __init__(self, width: int = 32, features: int = 128, classes: int = 10) -> None:
        super().__init__()

        def block(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(1, width), *block(width, width), nn.MaxPool2d(2),
                                  *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(2 * width * 49, features), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images N x 1 x 28 x 28 in [-1, 1] -> (features N x 128, logits N x 10)."""
        f = self.body(x)
        return f, self.head(self.drop(f))


@lru_cache(maxsize=2)
def load_evaluator(device: str = "cpu") -> EvaluatorCNN:
    from safetensors.torch import load_file

    with torch.random.fork_rng(devices=[]):  # its throwaway initial weights must not move the caller's RNG
        model = EvaluatorCNN()
    model.load_state_dict(load_file(str(WEIGHTS)))
    return model.to(device).eval()


@torch.no_grad()
def embed(x: Tensor, device: str = "cpu", batch: int = 1000) -> tuple[Tensor, Tensor]:
    """(features, class probabilities) of images N x 1 x 28 x 28 in [-1, 1], float64 on the CPU."""
    model = load_evaluator(device)
    feats, probs = [], []
    for i in range(0, len(x), batch):
        f, logits = model(x[i:i + batch].to(device).float())
        feats.append(f.double().cpu())
        probs.append(logits.double().softmax(1).cpu())
    return torch.cat(feats), torch.cat(probs)
