"""lsgan: the least-squares GAN loss (Mao et al. 2017) and a fully connected image generator.

An example of a third-party gancore plugin: its own package, one entry point, no change to the core.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gancore import hookimpl
from gancore.components import LogitLoss
from gancore.layers import LatentInput


@dataclass(kw_only=True)
class LeastSquaresConfig:
    real: float = 1.0  # target for real samples (b in the paper)
    fake: float = 0.0  # target for fake samples (a)


class LeastSquares(LogitLoss):
    """D minimises (D(x)-b)^2 + (D(G(z))-a)^2; G minimises (D(G(z))-b)^2 (the a-b-c = 0-1-1 scheme)."""

    def __init__(self, cfg: LeastSquaresConfig) -> None:
        self.real, self.fake = cfg.real, cfg.fake

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * ((real - self.real) ** 2).mean() + 0.5 * ((fake - self.fake) ** 2).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return 0.5 * ((fake - self.real) ** 2).mean()


@dataclass(kw_only=True)
class MLPConfig:
    hidden: int = 256
    layers: int = 2

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError("hidden and layers must be >= 1")


class MLPGenerator(nn.Module):
    """latent -> (Linear, BatchNorm, ReLU) x layers -> Linear -> tanh, reshaped to the data's shape."""

    def __init__(self, cfg: MLPConfig, latent: Any, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inp = LatentInput(latent)
        self.shape = tuple(shape)
        dims = [self.inp.dim] + [cfg.hidden] * cfg.layers
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            blocks += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(dims[-1], math.prod(self.shape)), nn.Tanh())

    def forward(self, **latent: Tensor) -> Tensor:
        return self.net(self.inp(latent)).view(-1, *self.shape)


def build_mlp(cfg: MLPConfig, *, latent: Any, data: dict[str, Any]) -> MLPGenerator:
    """Fully connected generator for any data shape."""
    return MLPGenerator(cfg, latent, tuple(data["shape"]))


@hookimpl
def gan_register_losses(register):
    register("least-squares", LeastSquares, config=LeastSquaresConfig)


@hookimpl
def gan_register_generators(register):
    register("mlp", build_mlp, config=MLPConfig)


@hookimpl
def gan_register_recipes(register):
    register("lsgan", lambda: {
        "generator": {"name": "mlp"},
        "discriminator": {"name": "dcgan"},  # components mix freely across plugins
        "loss": {"name": "least-squares"},
        "sampler": {"name": "normal", "dim": 64},
        "train": {"steps": 2000},
    })


__all__ = ["LeastSquares", "MLPGenerator"]
