"""MLP generator and discriminator for 2-D data, with PacGAN packing and minibatch discrimination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gancore.components import DOut, LatentSpec
from gancore.layers import LatentInput, MinibatchDiscrimination


@dataclass(kw_only=True)
class MLPGeneratorConfig:
    hidden: int = 128
    layers: int = 3

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError("hidden and layers must be >= 1")


@dataclass(kw_only=True)
class MLPDiscriminatorConfig:
    hidden: int = 128
    layers: int = 3
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; batch_size must divide by it
    minibatch_features: int = 0  # >0: a minibatch-discrimination layer (Salimans et al. 2016) before the head

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1 or self.pack < 1 or self.minibatch_features < 0:
            raise ValueError("hidden, layers and pack must be >= 1, minibatch_features >= 0")


class MLPGenerator(nn.Module):
    def __init__(self, cfg: MLPGeneratorConfig, latent: Sequence[LatentSpec], dim: int) -> None:
        super().__init__()
        self.inp = LatentInput(latent)
        layers: list[nn.Module] = []
        width = self.inp.dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU()]
            width = cfg.hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, **latent: Tensor) -> Tensor:
        return self.net(self.inp(latent))


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: MLPDiscriminatorConfig, dim: int) -> None:
        super().__init__()
        self.pack = cfg.pack
        layers: list[nn.Module] = []
        width = dim * cfg.pack
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.LeakyReLU(0.2)]
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.mbd = MinibatchDiscrimination(width, cfg.minibatch_features) if cfg.minibatch_features else None
        self.head = nn.Linear(width + cfg.minibatch_features, 1)

    def forward(self, x: Tensor) -> DOut:
        if x.shape[0] % self.pack:
            raise ValueError(f"batch of {x.shape[0]} does not divide into packs of {self.pack}")
        h = self.body(x.reshape(x.shape[0] // self.pack, -1))
        logits = self.head(self.mbd(h) if self.mbd is not None else h).squeeze(1)
        return DOut(logits=logits, features=h)


def build_generator(cfg: MLPGeneratorConfig, *, latent: Sequence[LatentSpec], data: dict[str, Any]) -> MLPGenerator:
    """MLP generator with a linear output, for points."""
    return MLPGenerator(cfg, latent, data["shape"][0])


def build_discriminator(cfg: MLPDiscriminatorConfig, *, latent: Sequence[LatentSpec],
                        data: dict[str, Any]) -> MLPDiscriminator:
    """MLP discriminator for points; optional packing and minibatch discrimination."""
    return MLPDiscriminator(cfg, data["shape"][0])
