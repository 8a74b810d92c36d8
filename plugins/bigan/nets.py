"""BiGAN's networks (Donahue et al. 2016): an encoder E(x) -> z and a discriminator of joint pairs (x, z).

G is dcgan's generator fed the BiGAN prior; E is dcgan's convolutional discriminator body, then (``hidden`` > 0)
a dense layer with batch norm and LeakyReLU as in the paper's MNIST encoder, then a linear head of the latent's
size (the paper leaves E's output unbounded); D reads x through the same kind of body, z through a dense layer,
and judges the pair from both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gancore.components import DOut, LatentSpec
from gancore.layers import LatentInput, dcgan_init
from gancore_plugins.dcgan import nets as dcgan


@dataclass(kw_only=True)
class EncoderConfig:
    width: int = 32  # channels of the first convolution; the next doubles it
    hidden: int = 0  # units of a dense layer between the convolutions and the latent head; 0: none

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024:
            raise ValueError(f"width must be in [4, 1024], got {self.width}")
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0 (0: no dense layer), got {self.hidden}")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    width: int = 32
    hidden: int = 512  # units of the z path and of the joint layer
    dropout: float = 0.2  # on the joint layer: the paper's MNIST D uses dropout against a too-strong D
    # BigBiGAN's unary scores (Donahue & Simonyan 2019): D also judges x alone and z alone, from its x and z
    # paths, so E(x) is pushed towards the prior and G(z) towards the data beside the joint game
    unary: bool = False

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024 or self.hidden < 1:
            raise ValueError("width must be in [4, 1024] and hidden >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def latent_of(latent: Sequence[LatentSpec]) -> LatentSpec:
    """BiGAN inverts one continuous latent input: the one E predicts and D pairs with x."""
    if len(latent) != 1 or latent[0].distribution == "categorical" or len(latent[0].shape) != 1:
        names = ", ".join(f"{s.name} ({s.distribution})" for s in latent)
        raise ValueError(f"bigan needs a sampler with one continuous 1-D latent (e.g. uniform), got {names}")
    return latent[0]


class Encoder(nn.Module):
    """x -> z: named for the latent input it inverts, so ``E(x)`` can be fed to G as ``G(**{name: E(x)})``."""

    def __init__(self, cfg: EncoderConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        spec = latent_of(latent)
        self.name, self.dim = spec.name, spec.shape[0]
        # with a dense layer, dcgan's head is its first linear map; without, E keeps the keys it always had
        self.net = dcgan.Discriminator(dcgan.DiscriminatorConfig(width=cfg.width), shape,
                                       n_logits=cfg.hidden or self.dim)
        self.head = nn.Sequential(nn.BatchNorm1d(cfg.hidden), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(cfg.hidden, self.dim)) if cfg.hidden else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.net(x).logits.view(-1, self.net.n_logits)  # dcgan squeezes a width of 1
        return self.head(h).view(-1, self.dim)  # (B, 1) stays 2-D when dim is 1


class Discriminator(nn.Module):
    """D(x, z) -> one real/fake logit for the pair; ``features`` is the joint layer."""

    joint_latent = True  # the core's dry run (and every caller) passes the latent beside x

    def __init__(self, cfg: DiscriminatorConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        latent_of(latent)
        self.x_path = dcgan.Discriminator(dcgan.DiscriminatorConfig(width=cfg.width), shape).body
        with torch.no_grad():
            x_dim = self.x_path(torch.zeros(2, *shape)).shape[1]
        self.z_in = LatentInput(latent)
        self.z_path = nn.Sequential(nn.Linear(self.z_in.dim, cfg.hidden), nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(nn.Linear(x_dim + cfg.hidden, cfg.hidden), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Dropout(cfg.dropout))
        self.head = nn.Linear(cfg.hidden, 1)
        self.unary = nn.ModuleDict({"x": nn.Linear(x_dim, 1), "z": nn.Linear(cfg.hidden, 1)}) if cfg.unary else None
        dcgan_init(self)

    def forward(self, x: Tensor, **latent: Tensor) -> DOut:
        hx, hz = self.x_path(x), self.z_path(self.z_in(latent))
        h = self.joint(torch.cat([hx, hz], 1))
        heads = {} if self.unary is None else {"unary_x": self.unary["x"](hx).squeeze(1),
                                               "unary_z": self.unary["z"](hz).squeeze(1)}
        return DOut(logits=self.head(h).squeeze(1), features=h, heads=heads)


def build_encoder(cfg: EncoderConfig, *, latent: Sequence[LatentSpec], data: dict[str, Any]) -> Encoder:
    """BiGAN encoder: strided convolutions (-> a dense layer) -> the latent, unbounded."""
    return Encoder(cfg, latent, data["shape"])


def build_discriminator(cfg: DiscriminatorConfig, *, latent: Sequence[LatentSpec],
                        data: dict[str, Any]) -> Discriminator:
    """BiGAN discriminator of joint (x, z) pairs."""
    return Discriminator(cfg, latent, data["shape"])
