"""InfoGAN networks, after the paper's MNIST architecture (Chen et al. 2016, appendix C.1).

G: FC 1024 - BN - ReLU, FC (width*2) x s x s - BN - ReLU, up-conv width - BN - ReLU, up-conv C - tanh.
D: conv width - LReLU, conv width*2 - BN - LReLU, FC 1024 - BN - LReLU, FC 1 (real/fake).
Q: shares all of D but its last layer: FC 128 - BN - LReLU, then the code logits and continuous means
(and log standard deviations when the variance is learned). s = size / 4, so 28 px starts at 7 x 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gancore.components import DOut, LatentSpec
from gancore.layers import LatentInput, dcgan_init

PAD_LOGIT = -1e4  # logits of classes a smaller code does not have: softmax gives them ~0


@dataclass(kw_only=True)
class GeneratorConfig:
    width: int = 64  # channels of the last hidden layer; the one before has twice as many
    hidden: int = 1024

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024 or not 8 <= self.hidden <= 8192:
            raise ValueError(f"width must be in [4, 1024] and hidden in [8, 8192], got {self.width}, {self.hidden}")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    width: int = 64  # channels of the first conv layer; the second has twice as many
    hidden: int = 1024
    q_hidden: int = 128
    q_variance: Literal["fixed", "learned"] = "fixed"  # Gaussian Q(c|x) for continuous codes: std 1, or learnt

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024 or not 8 <= self.hidden <= 8192 or not 2 <= self.q_hidden <= 8192:
            raise ValueError(f"width must be in [4, 1024], hidden in [8, 8192], q_hidden in [2, 8192]; got "
                             f"{self.width}, {self.hidden}, {self.q_hidden}")


def _layout(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2] or shape[1] % 4 or shape[1] < 8:
        raise ValueError(f"infogan needs square 1- or 3-channel images with a side divisible by 4, "
                         f"got shape {tuple(shape)}")
    return shape[0], shape[1] // 4


def codes_of(latent: Sequence[LatentSpec]) -> tuple[tuple[int, ...], int]:
    """(class count of each categorical code, number of continuous codes) of an InfoGAN latent."""
    specs = {s.name: s for s in latent}
    cat = specs["categorical"].class_counts() if "categorical" in specs else ()
    cont = specs["continuous"].shape[0] if "continuous" in specs else 0
    return tuple(cat), cont


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        channels, s = _layout(shape)
        self.inp = LatentInput(latent)
        self.top, self.s = cfg.width * 2, s
        self.project = nn.Sequential(
            nn.Linear(self.inp.dim, cfg.hidden, bias=False), nn.BatchNorm1d(cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, self.top * s * s, bias=False), nn.BatchNorm1d(self.top * s * s),
            nn.ReLU(inplace=True))
        self.body = nn.Sequential(
            nn.ConvTranspose2d(self.top, cfg.width, 4, 2, 1, bias=False), nn.BatchNorm2d(cfg.width),
            nn.ReLU(inplace=True), nn.ConvTranspose2d(cfg.width, channels, 4, 2, 1), nn.Tanh())
        dcgan_init(self)

    def forward(self, **latent: Tensor) -> Tensor:
        return self.body(self.project(self.inp(latent)).view(-1, self.top, self.s, self.s))


class Discriminator(nn.Module):
    """D and Q in one module: ``forward`` returns the real/fake logit with Q's outputs as heads."""

    def __init__(self, cfg: DiscriminatorConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        channels, s = _layout(shape)
        self.categories, self.n_continuous = codes_of(latent)
        if not self.categories and not self.n_continuous:
            raise ValueError("the infogan discriminator needs a latent with codes (sampler infogan)")
        w = cfg.width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.1, inplace=True),
            nn.Flatten(), nn.Linear(2 * w * s * s, cfg.hidden, bias=False), nn.BatchNorm1d(cfg.hidden),
            nn.LeakyReLU(0.1, inplace=True))
        self.head = nn.Linear(cfg.hidden, 1)
        self.q_body = nn.Sequential(nn.Linear(cfg.hidden, cfg.q_hidden, bias=False), nn.BatchNorm1d(cfg.q_hidden),
                                    nn.LeakyReLU(0.1, inplace=True))
        self.kmax = max(self.categories, default=0)
        self.q_cat = nn.Linear(cfg.q_hidden, len(self.categories) * self.kmax) if self.categories else None
        self.learned_variance = cfg.q_variance == "learned"
        n_cont_out = self.n_continuous * (2 if self.learned_variance else 1)
        self.q_cont = nn.Linear(cfg.q_hidden, n_cont_out) if self.n_continuous else None
        # Padding for codes smaller than the largest: a constant, so it is exported as one.
        mask = torch.zeros(len(self.categories), self.kmax)
        for i, k in enumerate(self.categories):
            mask[i, k:] = PAD_LOGIT
        self.register_buffer("pad", mask, persistent=False)
        dcgan_init(self)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Q's own layers: updated with G as well as with D, through the generator's optimizer too."""
        return [p for m in (self.q_body, self.q_cat, self.q_cont) if m is not None for p in m.parameters()]

    def q(self, h: Tensor) -> dict[str, Tensor]:
        """Q(c | x) from D's features: ``q_cat`` (B, codes, max classes) logits, ``q_cont_mean`` (B, continuous)
        and, with a learnt variance, ``q_cont_logstd``."""
        hq = self.q_body(h)
        out: dict[str, Tensor] = {}
        if self.q_cat is not None:
            out["q_cat"] = self.q_cat(hq).view(-1, len(self.categories), self.kmax) + self.pad
        if self.q_cont is not None:
            c = self.q_cont(hq)
            out["q_cont_mean"] = c[:, : self.n_continuous]
            if self.learned_variance:
                out["q_cont_logstd"] = c[:, self.n_continuous:].clamp(-5.0, 3.0)
        return out

    def forward(self, x: Tensor) -> DOut:
        h = self.body(x)
        return DOut(logits=self.head(h).squeeze(1), features=h, heads=self.q(h))


class QModel(nn.Module):
    """Image -> code logits (B, codes, max classes) and continuous means: the exported Q head."""

    def __init__(self, d: Discriminator) -> None:
        super().__init__()
        self.d = d

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        heads = self.d.q(self.d.body(images))
        return tuple(heads[k] for k in ("q_cat", "q_cont_mean") if k in heads)


def build_generator(cfg: GeneratorConfig, *, latent: Sequence[LatentSpec], data: dict[str, Any]) -> Generator:
    """InfoGAN generator: noise and codes -> FC layers -> two up-convolutions -> tanh image."""
    return Generator(cfg, latent, data["shape"])


def build_discriminator(cfg: DiscriminatorConfig, *, latent: Sequence[LatentSpec],
                        data: dict[str, Any]) -> Discriminator:
    """InfoGAN discriminator with the Q head sharing its body."""
    return Discriminator(cfg, latent, data["shape"])
