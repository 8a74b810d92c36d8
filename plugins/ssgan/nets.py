"""The Improved-GAN MNIST networks (Salimans et al. 2016, their feature-matching model), for any image size.

G: MLP, softplus units with batch norm (or virtual batch norm), tanh image.
D: MLP classifier with K class logits, Gaussian noise on its input and after every hidden layer, weight
normalisation, and an optional minibatch-discrimination layer before its head. Its last hidden layer is the
feature layer G matches.
D (``ssgan-conv``): the paper's CIFAR-10 model scaled to small images: dropout on the input, blocks of
3x3 convolutions with LeakyReLU ending in a strided one, dropout after each block, a valid 3x3 convolution and
two 1x1 ones, global mean pooling (the feature layer), weight normalisation throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from gancore.components import DOut, LatentSpec, real_logit
from gancore.layers import (
    GaussianNoise,
    LatentInput,
    MinibatchDiscrimination,
    ReferenceBatchNet,
    VirtualBatchNorm,
    add_reference_batch,
)


@dataclass(kw_only=True)
class GeneratorConfig:
    hidden: int = 500
    layers: int = 2
    norm: str = "batch"  # batch, virtual (Salimans et al. 2016, sec. 3.4) or none
    reference_size: int = 100  # the virtual-batch-norm reference batch, drawn once from the latent
    reference_seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1 or self.reference_size < 1:
            raise ValueError("hidden, layers and reference_size must be >= 1")
        if self.norm not in ("batch", "virtual", "none"):
            raise ValueError(f"norm must be batch, virtual or none, got {self.norm!r}")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    hidden: list[int] = field(default_factory=lambda: [1000, 500, 250, 250, 250])
    input_noise: float = 0.3
    hidden_noise: float = 0.5
    weight_norm: bool = True
    minibatch_features: int = 0  # >0: minibatch discrimination (Salimans et al. 2016, sec. 3.2) before the head

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden must list one or more layer widths >= 1")
        if self.input_noise < 0 or self.hidden_noise < 0 or self.minibatch_features < 0:
            raise ValueError("input_noise, hidden_noise and minibatch_features must be >= 0")


@dataclass(kw_only=True)
class ConvDiscriminatorConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one block per entry, each halves the size
    depth: int = 0  # unstrided convolutions before each block's strided one (the paper's CIFAR model: 2)
    input_dropout: float = 0.2
    dropout: float = 0.5
    weight_norm: bool = True
    minibatch_features: int = 0

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError("channels must list one or more block widths >= 1")
        if self.depth < 0 or self.minibatch_features < 0:
            raise ValueError("depth and minibatch_features must be >= 0")
        if not (0 <= self.input_dropout < 1 and 0 <= self.dropout < 1):
            raise ValueError("input_dropout and dropout must be in [0, 1)")


class Generator(ReferenceBatchNet):
    def __init__(self, cfg: GeneratorConfig, latent: Sequence[LatentSpec], shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.inp = LatentInput(latent)
        self.virtual = cfg.norm == "virtual"
        layers: list[nn.Module] = []
        width = self.inp.dim
        for _ in range(cfg.layers):
            layers.append(nn.Linear(width, cfg.hidden, bias=cfg.norm == "none"))
            if cfg.norm == "batch":
                layers.append(nn.BatchNorm1d(cfg.hidden))
            elif self.virtual:
                layers.append(VirtualBatchNorm(cfg.hidden, cfg.reference_size))
            layers.append(nn.Softplus())
            width = cfg.hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, math.prod(self.shape)), nn.Tanh())
        self.latent = list(latent)
        if self.virtual:
            add_reference_batch(self, latent, cfg.reference_size, cfg.reference_seed)

    def reference_net(self, latent: dict[str, Tensor]) -> Tensor:
        return self.net(self.inp(latent))

    def forward(self, **latent: Tensor) -> Tensor:
        self.reference_pass_in_training()  # with virtual batch norm: the reference's statistics for this step
        return self.reference_net(latent).view(-1, *self.shape)


def _normed(layer: nn.Module, norm: bool) -> nn.Module:
    return weight_norm(layer) if norm else layer


def _linear(n_in: int, n_out: int, norm: bool) -> nn.Module:
    return _normed(nn.Linear(n_in, n_out), norm)


class Discriminator(nn.Module):
    """K class logits; the fake class's logit is fixed at 0, so D(x) = Z(x) / (Z(x) + 1), Z = sum exp(l_k)."""

    def __init__(self, cfg: DiscriminatorConfig, shape: Sequence[int], classes: int) -> None:
        super().__init__()
        self.classes = classes
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(cfg.input_noise)]
        width = math.prod(shape)
        for i, h in enumerate(cfg.hidden):
            if i:  # noise after every hidden layer but the feature layer, which G matches noise-free
                layers.append(GaussianNoise(cfg.hidden_noise))
            layers += [_linear(width, h, cfg.weight_norm), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.noise = GaussianNoise(cfg.hidden_noise)
        self.mbd = MinibatchDiscrimination(width, cfg.minibatch_features) if cfg.minibatch_features else None
        self.head = _linear(width + cfg.minibatch_features, classes, cfg.weight_norm)
        # No batch statistics anywhere: an example's output does not depend on its batch, so the loss may
        # run several batches through in one call.
        self.per_example = self.mbd is None

    def forward(self, x: Tensor) -> DOut:
        h = self.body(x)
        z = self.noise(h)
        if self.mbd is not None:
            z = self.mbd(z)
        return DOut(logits=self.head(z), features=h)


def _conv(n_in: int, n_out: int, k: int, norm: bool, *, stride: int = 1,
          padding: int | None = None) -> list[nn.Module]:
    layer = nn.Conv2d(n_in, n_out, k, stride=stride, padding=k // 2 if padding is None else padding)
    return [_normed(layer, norm), nn.LeakyReLU(0.2)]


class ConvDiscriminator(nn.Module):
    """The convolutional K-class D; as :class:`Discriminator`, the fake class's logit is fixed at 0."""

    def __init__(self, cfg: ConvDiscriminatorConfig, shape: Sequence[int], classes: int) -> None:
        super().__init__()
        self.classes = classes
        c, hw = shape[0], min(shape[1:])
        layers: list[nn.Module] = [nn.Dropout(cfg.input_dropout)]
        for width in cfg.channels:
            for _ in range(cfg.depth):
                layers += _conv(c, width, 3, cfg.weight_norm)
                c = width
            layers += [*_conv(c, width, 3, cfg.weight_norm, stride=2), nn.Dropout(cfg.dropout)]
            c, hw = width, (hw + 1) // 2
        last = cfg.channels[-1]
        if hw >= 3:  # the paper's valid 3x3 convolution, where the map is big enough for one
            layers += _conv(last, last, 3, cfg.weight_norm, padding=0)
        layers += [*_conv(last, last, 1, cfg.weight_norm), *_conv(last, last, 1, cfg.weight_norm),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.mbd = MinibatchDiscrimination(last, cfg.minibatch_features) if cfg.minibatch_features else None
        self.head = _linear(last + cfg.minibatch_features, classes, cfg.weight_norm)
        self.per_example = self.mbd is None  # dropout is per example; no batch statistics

    def forward(self, x: Tensor) -> DOut:
        h = self.body(x)
        return DOut(logits=self.head(h if self.mbd is None else self.mbd(h)), features=h)


class Classifier(nn.Module):
    """The exported D: images -> class probabilities (B, K) and the probability of being real, Z / (Z + 1)."""

    def __init__(self, d: Discriminator | ConvDiscriminator) -> None:
        super().__init__()
        self.d = d

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.d(images).logits
        return logits.softmax(1), torch.sigmoid(real_logit(logits))


def build_generator(cfg: GeneratorConfig, *, latent: Sequence[LatentSpec], data: dict[str, Any]) -> Generator:
    """MLP generator of the Improved-GAN feature-matching model."""
    return Generator(cfg, latent, data["shape"])


def _classes(data: dict[str, Any]) -> int:
    classes = data.get("classes")
    if not classes:
        raise ValueError(f"the ssgan discriminator needs a dataset with classes; {data.get('dataset', 'this one')} "
                         f"has none")
    return len(classes)


def build_discriminator(cfg: DiscriminatorConfig, *, latent: Sequence[LatentSpec],
                        data: dict[str, Any]) -> Discriminator:
    """MLP classifier with K class logits, the implicit fake class at logit 0."""
    return Discriminator(cfg, data["shape"], _classes(data))


def build_conv_discriminator(cfg: ConvDiscriminatorConfig, *, latent: Sequence[LatentSpec],
                             data: dict[str, Any]) -> ConvDiscriminator:
    """Convolutional classifier with K class logits (the paper's CIFAR-10 D, scaled), the fake class at logit 0."""
    return ConvDiscriminator(cfg, data["shape"], _classes(data))
