"""How much E(x) knows about the class: 1-NN and linear-probe accuracy on the test set, fitted on the
training set, beside the same for raw pixels and for a randomly initialised encoder; and G(E(x))'s error."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.components import Metric
from gancore.sampling import batched, eval_mode
from gancore.state import load_data, to_device


def encode(e: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    return batched(lambda xs: e(xs).float(), x, batch)


@torch.no_grad()
def nearest_neighbour(train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor, chunk: int = 500) -> float:
    """Accuracy of the label of each test point's nearest training point (Euclidean)."""
    hits = 0
    sq = (train * train).sum(1)
    for i in range(0, len(test), chunk):
        q = test[i:i + chunk]
        d = sq.unsqueeze(0) - 2 * q @ train.T  # |q|^2 is the same for every candidate
        hits += int((train_y[d.argmin(1)] == test_y[i:i + chunk]).sum())
    return hits / len(test)


def linear_probe(train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor, *, weight_decay: float = 1e-4,
                 iterations: int = 100) -> float:
    """Multinomial logistic regression on standardised features (L-BFGS, full batch, L2 penalty): test accuracy."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    a, b = (train - mean) / std, (test - mean) / std
    classes = int(train_y.max()) + 1
    w = torch.zeros(a.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((b @ w + bias).argmax(1) == test_y).float().mean())


def random_like(e: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture, freshly initialised with a fixed seed."""
    fresh = copy.deepcopy(e)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in fresh.modules():
            if m is not fresh and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return fresh


def probe_all(features: dict[str, tuple[Tensor, Tensor]], train_y: Tensor, test_y: Tensor) -> dict[str, float]:
    """``{"<name>_nn1": ..., "<name>_linear": ...}`` for each (train, test) feature pair."""
    out = {}
    for name, (tr, te) in features.items():
        out[f"{name}_nn1"] = nearest_neighbour(tr, train_y, te, test_y)
        out[f"{name}_linear"] = linear_probe(tr, train_y, te, test_y)
    return out


class EncoderProbes(Metric):
    """E(x) against raw pixels and a random encoder, on the labelled test set; reconstruction error of G(E(x))."""

    def __init__(self, role: str = "encoder") -> None:
        self.role = role

    def applies(self, state: Any) -> bool:
        nets = getattr(state, "nets", None)
        return nets is not None and self.role in nets.extra and state.data_info.get("classes") is not None

    def __call__(self, state: Any) -> dict[str, float]:
        train = load_data(state.manager, state.config, train=True)
        test = load_data(state.manager, state.config, train=False)
        if train.y is None or test.y is None:
            return {}
        e, g = state.nets.extra[self.role], state.nets.generator
        x_train = to_device(train.x, state.device, state.config)
        x_test = to_device(test.x, state.device, state.config)
        rand = random_like(e, seed=int(state.config.get("seed", 0)))  # a fresh draw per run seed
        with eval_mode(e, g, rand):
            feats = {"encoder": (encode(e, x_train), encode(e, x_test)),
                     "random": (encode(rand, x_train), encode(rand, x_test)),
                     "pixels": (train.x.flatten(1).float(), test.x.flatten(1).float())}
            with torch.no_grad():
                z = feats["encoder"][1][:2000].to(state.device)
                rec = g(**{e.name: z}).float().cpu()
        out = probe_all(feats, train.y, test.y)
        out["reconstruction_mse"] = float(((rec - test.x[:2000].float()) ** 2).mean())
        return out
