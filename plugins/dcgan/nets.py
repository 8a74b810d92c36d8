"""DCGAN networks (Radford et al. 2015): strided (transposed) convolutions, batch norm, ReLU in G,
LeakyReLU(0.2) in D, tanh output; no pooling and no hidden fully connected layers beyond the projection.
Sizes 28 (7 -> 14 -> 28), 32 and 64 (4 -> ... -> size), with 1 or 3 channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gancore.components import DOut, LatentSpec
from gancore.layers import (
    LatentInput,
    MinibatchDiscrimination,
    ReferenceBatchNet,
    VirtualBatchNorm,
    add_reference_batch,
    dcgan_init,
)


@dataclass(kw_only=True)
class GeneratorConfig:
    width: int = 64  # channels of the last hidden layer; earlier layers double it
    batchnorm: bool = True
    # Improved Techniques (Salimans et al. 2016, sec. 3.4): each sample normalised with a reference batch's
    # statistics and its own, never its batch-mates'; the reference latents are drawn once from reference_seed
    virtual_batchnorm: bool = False
    reference_size: int = 64
    reference_seed: int = 0

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024:
            raise ValueError(f"width must be in [4, 1024], got {self.width}")
        if self.virtual_batchnorm and not self.batchnorm:
            raise ValueError("virtual_batchnorm replaces batch norm; it needs batchnorm = true")
        if self.reference_size < 2:
            raise ValueError(f"reference_size must be >= 2, got {self.reference_size}")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    width: int = 64  # channels of the first layer; later layers double it
    batchnorm: bool = True
    dropout: float = 0.0
    minibatch_features: int = 0  # >0: minibatch discrimination (Salimans et al. 2016, sec. 3.2) before the head

    def __post_init__(self) -> None:
        if not 4 <= self.width <= 1024:
            raise ValueError(f"width must be in [4, 1024], got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.minibatch_features < 0:
            raise ValueError(f"minibatch_features must be >= 0 (0: off), got {self.minibatch_features}")


def _layout(shape: Sequence[int]) -> tuple[int, int, int]:
    """(channels, start size, number of x2 upsamplings) for an image shape C x H x W."""
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
        raise ValueError(f"dcgan needs square images with 1 or 3 channels, got shape {tuple(shape)}")
    size = shape[1]
    if size == 28:
        return shape[0], 7, 2
    if size in (32, 64):
        return shape[0], 4, {32: 3, 64: 4}[size]
    raise ValueError(f"dcgan supports 28, 32 and 64 px images, got {size} (set data.image_size)")


class Generator(ReferenceBatchNet):
    def __init__(self, cfg: GeneratorConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        channels, start, n_up = _layout(shape)
        self.inp = LatentInput(latent)
        top = cfg.width * 2 ** (n_up - 1)
        self.virtual, self.latent = cfg.virtual_batchnorm, list(latent)

        def norm(n: int, bn: type[nn.Module]) -> nn.Module:
            if not cfg.batchnorm:
                return nn.Identity()
            return VirtualBatchNorm(n, cfg.reference_size) if self.virtual else bn(n)

        self.project = nn.Sequential(nn.Linear(self.inp.dim, top * start * start, bias=not cfg.batchnorm),
                                     norm(top * start * start, nn.BatchNorm1d), nn.ReLU(inplace=True))
        self.top, self.start = top, start
        layers: list[nn.Module] = []
        ch = top
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=not cfg.batchnorm),
                       norm(ch // 2, nn.BatchNorm2d), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        dcgan_init(self)
        if self.virtual:
            add_reference_batch(self, latent, cfg.reference_size, cfg.reference_seed)

    def reference_net(self, latent: dict[str, Tensor]) -> Tensor:
        return self.body(self.project(self.inp(latent)).view(-1, self.top, self.start, self.start))

    def forward(self, **latent: Tensor) -> Tensor:
        self.reference_pass_in_training()  # with virtual batch norm: the reference's statistics for this step
        return self.reference_net(latent)


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, shape: Sequence[int], n_logits: int = 1) -> None:
        super().__init__()
        channels, start, n_down = _layout(shape)
        layers: list[nn.Module] = []
        ch_in, ch = channels, cfg.width
        for i in range(n_down):
            layers.append(nn.Conv2d(ch_in, ch, 4, 2, 1, bias=i == 0 or not cfg.batchnorm))
            if i > 0 and cfg.batchnorm:  # no BN on D's input layer (Radford et al.)
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            ch_in, ch = ch, ch * 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = ch_in * start * start
        mbf = cfg.minibatch_features
        self.mbd = MinibatchDiscrimination(self.feature_dim, mbf) if mbf else None
        self.head = nn.Linear(self.feature_dim + mbf, n_logits)
        self.n_logits = n_logits
        dcgan_init(self)

    def forward(self, x: Tensor) -> DOut:
        h = self.body(x)
        logits = self.head(h if self.mbd is None else self.mbd(h))
        return DOut(logits=logits.squeeze(1) if self.n_logits == 1 else logits, features=h)


def build_generator(cfg: GeneratorConfig, *, latent: Sequence[LatentSpec], data: dict[str, Any]) -> Generator:
    """DCGAN generator: latent -> projection -> transposed convolutions -> tanh image."""
    return Generator(cfg, latent, data["shape"])


def build_discriminator(cfg: DiscriminatorConfig, *, latent: Sequence[LatentSpec],
                        data: dict[str, Any]) -> Discriminator:
    """DCGAN discriminator: strided convolutions with LeakyReLU -> one real/fake logit."""
    return Discriminator(cfg, data["shape"])
