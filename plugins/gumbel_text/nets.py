"""The Gumbel-softmax sequence generator, its latent sampler and a convolutional discriminator over one-hots.

G is a GRU that writes one token per step from z. Each step's distribution is relaxed with Gumbel-softmax
(Jang et al. 2016; Maddison et al. 2016): y = softmax((logits + g) / tau) with g Gumbel noise, so D's
gradient reaches G through the sampled sequence; the relaxed token is fed back as the next input
(Kusner & Hernández-Lobato 2016). ``straight_through`` feeds and emits the hard one-hot instead, with the
relaxed gradient. Out of training mode G takes the hard sample, argmax(logits + g): an exact draw from
softmax(logits), which is what sampling and export use.

The Gumbel noise enters as uniform noise ``gumbel`` (batch x T x V) beside ``noise``, because random ops in
ONNX cannot be seeded from torch: with both as inputs an exported generator is a pure function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.builtin.samplers import NoiseConfig
from gancore.components import DOut, LatentSpec, Sampler
from gancore.layers import MinibatchDiscrimination

EPS = 1e-20


def gumbel_from_uniform(u: Tensor) -> Tensor:
    """Gumbel(0, 1) noise from U(0, 1) noise: -log(-log u), finite for u in [0, 1)."""
    return -torch.log(-torch.log(u + EPS) + EPS)


def gumbel_softmax(logits: Tensor, gumbel: Tensor, temperature: float, hard: bool = False) -> Tensor:
    """softmax((logits + gumbel) / temperature); with ``hard``, the one-hot of its argmax carrying the soft gradient."""
    soft = F.softmax((logits + gumbel) / temperature, dim=-1)
    if not hard:
        return soft
    return one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype) - soft.detach() + soft


def one_hot(ids: Tensor, classes: int) -> Tensor:
    """Float one-hot by comparison with a range (exports to ONNX as Equal + Cast)."""
    return (ids.unsqueeze(-1) == torch.arange(classes, device=ids.device)).float()


# ------------------------------------------------------------------------------------------------ temperature


@dataclass(kw_only=True)
class GeneratorConfig:
    hidden: int = 256
    embed: int = 64
    temperature: float = 1.0  # at step 0
    temperature_min: float = 0.1  # the schedule's end value
    schedule: str = "exponential"  # constant | linear | exponential: from temperature to temperature_min
    anneal_steps: int = 0  # steps to reach temperature_min (0: the whole run)
    straight_through: bool = False  # hard one-hots forward, relaxed gradient backward

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.embed < 1:
            raise ValueError(f"hidden and embed must be >= 1, got {self.hidden} and {self.embed}")
        if not 0 < self.temperature_min <= self.temperature:
            raise ValueError(f"need 0 < temperature_min <= temperature, got {self.temperature_min} and "
                             f"{self.temperature}")
        if self.schedule not in ("constant", "linear", "exponential"):
            raise ValueError(f"schedule must be constant, linear or exponential, got {self.schedule!r}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.anneal_steps}")


def temperature_at(cfg: GeneratorConfig, step: int, total_steps: int) -> float:
    """The annealed temperature at ``step``: ``temperature`` at 0, ``temperature_min`` from ``anneal_steps`` on.

    exponential: tau0 * (tau_min / tau0) ** (step / N), a constant rate of decay (Jang et al. anneal
    exponentially); linear: a straight line; constant: tau0 throughout.
    """
    if cfg.schedule == "constant":
        return cfg.temperature
    span = cfg.anneal_steps or total_steps
    frac = min(1.0, step / max(span, 1))
    if cfg.schedule == "linear":
        return cfg.temperature + frac * (cfg.temperature_min - cfg.temperature)
    return cfg.temperature * math.exp(frac * math.log(cfg.temperature_min / cfg.temperature))


# ------------------------------------------------------------------------------------------------ latent


@dataclass(kw_only=True)
class SamplerConfig(NoiseConfig):
    dim: int = 64  # the core noise options (and their check), with a smaller default for a GRU's z


class TextSampler(Sampler):
    """``noise`` ~ N(0, I)^dim and ``gumbel`` ~ U(0, 1)^(T x V): one uniform per token and vocabulary entry."""

    def __init__(self, cfg: SamplerConfig, *, data: dict[str, Any]) -> None:
        if data.get("kind") != "sequence" or not data.get("vocab"):
            raise ValueError(f"the gumbel-text sampler needs a sequence dataset with a vocabulary (cfg, words, "
                             f"text:PATH), not {data.get('kind')!r} data")
        length, vocab = data["shape"][0], len(data["vocab"])
        self.specs = (LatentSpec("noise", (cfg.dim,), "normal"),
                      LatentSpec("gumbel", (length, vocab), "uniform", low=0.0, high=1.0, bounded=True))


def _sequence_shape(latent: tuple[LatentSpec, ...], data: dict[str, Any], who: str) -> tuple[int, int, int]:
    specs = {s.name: s for s in latent}
    if data.get("kind") != "sequence" or "gumbel" not in specs or "noise" not in specs:
        raise ValueError(f"the gumbel-text {who} needs sequence data and the gumbel-text sampler "
                         f"(inputs noise and gumbel), got {data.get('kind')!r} data and inputs {sorted(specs)}")
    length, vocab = specs["gumbel"].shape
    return length, vocab, specs["noise"].shape[0]


# ------------------------------------------------------------------------------------------------ generator


class TextGenerator(nn.Module):
    """z -> T tokens, one GRU step each; z enters the initial state and every step's input."""

    def __init__(self, cfg: GeneratorConfig, length: int, vocab: int, noise_dim: int) -> None:
        super().__init__()
        self.cfg, self.length, self.vocab = cfg, length, vocab
        self.temperature = cfg.temperature
        self.init = nn.Linear(noise_dim, cfg.hidden)
        self.start = nn.Parameter(torch.zeros(cfg.embed))
        self.embed = nn.Linear(vocab, cfg.embed, bias=False)  # a matmul, so soft one-hots embed too
        self.cell = nn.GRUCell(cfg.embed + noise_dim, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, vocab)

    def schedule(self, step: int, total_steps: int) -> None:
        """Called by the loop before each step: the annealed temperature."""
        self.temperature = temperature_at(self.cfg, step, total_steps)

    def _h0(self, noise: Tensor) -> Tensor:
        return torch.tanh(self.init(noise))

    def _step(self, h: Tensor, prev: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        h = self.cell(torch.cat([prev, noise], dim=1), h)
        return h, self.out(h)

    def forward(self, noise: Tensor, gumbel: Tensor) -> Tensor:
        """Batch x T x V: relaxed one-hots in training mode, hard one-hots otherwise."""
        if self.training:
            return self.run(noise, gumbel)[0]
        ids, _ = self.decode(noise, gumbel)
        return one_hot(ids, self.vocab)

    def run(self, noise: Tensor, gumbel: Tensor) -> tuple[Tensor, Tensor]:
        """The relaxed sequence (batch x T x V) and its logits, each step fed the previous relaxed token."""
        g = gumbel_from_uniform(gumbel)
        h, prev = self._h0(noise), self.start.expand(noise.shape[0], -1)
        ys, logits = [], []
        for t in range(self.length):
            h, lt = self._step(h, prev, noise)
            y = gumbel_softmax(lt, g[:, t], self.temperature, self.cfg.straight_through)
            prev = self.embed(y)
            ys.append(y)
            logits.append(lt)
        return torch.stack(ys, 1), torch.stack(logits, 1)

    def decode(self, noise: Tensor, gumbel: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids (batch x T, int64) by the Gumbel-max trick, each step fed the token drawn, and the logits."""
        g = gumbel_from_uniform(gumbel)
        h, prev = self._h0(noise), self.start.expand(noise.shape[0], -1)
        ids, logits = [], []
        for t in range(self.length):
            h, lt = self._step(h, prev, noise)
            it = (lt + g[:, t]).argmax(-1)
            prev = self.embed.weight.t()[it]  # the embedding of a hard one-hot: one row
            ids.append(it)
            logits.append(lt)
        return torch.stack(ids, 1), torch.stack(logits, 1)

    def teacher_forced(self, ids: Tensor, noise: Tensor) -> Tensor:
        """Logits (batch x T x V) of each token given the true ones before it: the MLE objective's input."""
        emb = self.embed.weight.t()[ids[:, :-1]]  # batch x (T - 1) x E
        prev = torch.cat([self.start.expand(ids.shape[0], 1, -1), emb], dim=1)
        h, logits = self._h0(noise), []
        for t in range(self.length):
            h, lt = self._step(h, prev[:, t], noise)
            logits.append(lt)
        return torch.stack(logits, 1)


def build_generator(cfg: GeneratorConfig, *, latent: tuple[LatentSpec, ...], data: dict[str, Any]) -> TextGenerator:
    """GRU text generator: z -> T Gumbel-softmax token distributions (straight-through optional)."""
    length, vocab, noise_dim = _sequence_shape(latent, data, "generator")
    return TextGenerator(cfg, length, vocab, noise_dim)


class TextExport(nn.Module):
    """The exported generator: (noise, gumbel) -> (ids, logits), the hard path, deterministic in its inputs."""

    def __init__(self, generator: TextGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, noise: Tensor, gumbel: Tensor) -> tuple[Tensor, Tensor]:
        return self.generator.decode(noise, gumbel)


# ------------------------------------------------------------------------------------------------ discriminator


@dataclass(kw_only=True)
class DiscriminatorConfig:
    embed: int = 64
    filters: int = 64  # per kernel width
    widths: tuple[int, ...] = (2, 3, 4, 5)  # n-gram detectors, as in the CNN text classifiers of Kim 2014
    minibatch_features: int = 0  # >0: minibatch discrimination (Salimans et al. 2016) against a collapsed batch

    def __post_init__(self) -> None:
        if self.embed < 1 or self.filters < 1 or not self.widths or min(self.widths) < 1:
            raise ValueError("embed, filters and every width must be >= 1")
        if self.minibatch_features < 0:
            raise ValueError(f"minibatch_features must be >= 0, got {self.minibatch_features}")


class TextDiscriminator(nn.Module):
    """Reads token ids (real data) or soft one-hots (G's samples): embed, n-gram convolutions, max over time.

    A learnt start column goes before the first token; without it, max-pooled n-gram detectors could not
    tell a sequence that begins with an operator from one that merely contains it."""

    def __init__(self, cfg: DiscriminatorConfig, length: int, vocab: int) -> None:
        super().__init__()
        self.per_example = not cfg.minibatch_features  # then real and fake may share one forward pass
        self.vocab = vocab
        self.embed = nn.Linear(vocab, cfg.embed, bias=False)
        self.start = nn.Parameter(torch.randn(cfg.embed, 1) * 0.1)  # a start column: n-grams see the first token
        widths = [w for w in cfg.widths if w <= length + 1]
        self.convs = nn.ModuleList(nn.Conv1d(cfg.embed, cfg.filters, w) for w in widths)
        feat = cfg.filters * len(widths)
        self.highway = nn.Linear(feat, 2 * feat)
        self.mbd = MinibatchDiscrimination(feat, cfg.minibatch_features) if cfg.minibatch_features else None
        self.head = nn.Linear(feat + cfg.minibatch_features, 1)

    def forward(self, x: Tensor) -> DOut:
        if not x.is_floating_point():
            x = one_hot(x, self.vocab)
        e = self.embed(x).transpose(1, 2)  # batch x E x T
        e = torch.cat([self.start.expand(e.shape[0], -1, -1), e], dim=2)
        f = torch.cat([F.leaky_relu(conv(e), 0.2).amax(-1) for conv in self.convs], dim=1)
        h, gate = self.highway(f).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        f = gate * F.leaky_relu(h, 0.2) + (1 - gate) * f
        return DOut(logits=self.head(self.mbd(f) if self.mbd is not None else f).squeeze(1), features=f)


def build_discriminator(cfg: DiscriminatorConfig, *, latent: tuple[LatentSpec, ...],
                        data: dict[str, Any]) -> TextDiscriminator:
    """Text discriminator: token ids or soft one-hots -> embedding, n-gram convolutions, max over time."""
    length, vocab, _ = _sequence_shape(latent, data, "discriminator")
    return TextDiscriminator(cfg, length, vocab)
