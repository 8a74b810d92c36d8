"""The interfaces components implement. Plugins subclass these; the loop only talks to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gancore.augment import random_shift

# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


@dataclass
class TensorData:
    """A whole dataset as tensors, so it can sit on the device and be indexed without Python loops.

    ``x`` holds examples in the model's layout (images: float N x C x H x W in ``value_range``;
    sequences: int64 token ids N x T). ``y`` holds int64 class labels or None.
    """

    x: Tensor
    y: Tensor | None = None
    kind: Literal["image", "sequence", "points"] = "image"
    value_range: tuple[float, float] = (-1.0, 1.0)
    classes: list[str] | None = None
    vocab: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def describe(self) -> dict[str, Any]:
        """The facts export and sampling need, as JSON."""
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "value_range": list(self.value_range),
            "classes": self.classes,
            "vocab": self.vocab,
            **self.info,
        }


@dataclass
class Batch:
    """What the loop hands a loss for one step: a real batch and, for semi-supervised runs, a labelled one."""

    x: Tensor
    y: Tensor | None = None
    x_labelled: Tensor | None = None
    y_labelled: Tensor | None = None


# ------------------------------------------------------------------------------------------------
# Latent samplers
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentSpec:
    """One named latent input: its per-example shape, dtype and distribution.

    ``distribution`` is one of ``normal`` (mean 0, std 1), ``uniform`` (on ``low``..``high``) or
    ``categorical`` (int64 indices in ``[0, classes)``). A 1-D categorical input holding several codes of
    different sizes (InfoGAN's one 10-way and one 2-way code) lists them in ``categories``, one per column;
    ``classes`` is then their maximum. ``bounded``: a uniform input whose values outside ``low``..``high`` mean
    nothing (Gumbel noise's u, whose log a negative turns to NaN), so that deployment refuses them; without it
    they are allowed (InfoGAN's continuous codes are traversed past their range on purpose).
    """

    name: str
    shape: tuple[int, ...]
    distribution: Literal["normal", "uniform", "categorical"]
    dtype: Literal["float32", "int64"] = "float32"
    low: float = -1.0
    high: float = 1.0
    classes: int = 0
    categories: tuple[int, ...] = ()
    bounded: bool = False

    def __post_init__(self) -> None:
        if self.categories and (len(self.shape) != 1 or len(self.categories) != self.shape[0]
                                or self.classes != max(self.categories) or min(self.categories) < 1):
            raise ValueError(f"latent {self.name!r}: categories {self.categories} must give one class count "
                             f">= 1 per column of a 1-D shape, with classes their maximum")
        if self.bounded and self.distribution != "uniform":
            raise ValueError(f"latent {self.name!r}: bounded is for uniform inputs, not {self.distribution}")

    def class_counts(self) -> tuple[int, ...]:
        """Each column's class count (categorical, 1-D shape)."""
        return self.categories or (self.classes,) * self.shape[-1]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                             "distribution": self.distribution}
        if self.distribution == "uniform":
            d.update(low=self.low, high=self.high)
            if self.bounded:
                d.update(bounded=True)
        if self.distribution == "categorical":
            d.update(classes=self.classes)
            if self.categories:
                d.update(categories=list(self.categories))
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LatentSpec:
        return cls(name=d["name"], shape=tuple(d["shape"]), distribution=d["distribution"],
                   dtype=d.get("dtype", "float32"), low=d.get("low", -1.0), high=d.get("high", 1.0),
                   classes=d.get("classes", 0), categories=tuple(d.get("categories", ())),
                   bounded=d.get("bounded", False))


def draw(spec: LatentSpec, n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """Draw ``n`` values of one latent input with generator ``gen`` (which lives on ``device``)."""
    shape = (n, *spec.shape)
    if spec.distribution == "normal":
        return torch.randn(shape, generator=gen, device=device)
    if spec.distribution == "uniform":
        return torch.rand(shape, generator=gen, device=device) * (spec.high - spec.low) + spec.low
    if spec.distribution == "categorical" and spec.categories:  # a different class count per column
        counts = torch.tensor(spec.categories, device=device)
        u = torch.rand(shape, generator=gen, device=device)
        return torch.minimum((u * counts).long(), counts - 1)
    if spec.distribution == "categorical":
        return torch.randint(0, spec.classes, shape, generator=gen, device=device)
    raise ValueError(f"unknown distribution {spec.distribution!r}")


class Sampler:
    """Draws the generator's named latent inputs. Subclasses set ``specs``."""

    specs: tuple[LatentSpec, ...] = ()

    def sample(self, n: int, gen: torch.Generator, device: torch.device) -> dict[str, Tensor]:
        return {s.name: draw(s, n, gen, device) for s in self.specs}


# ------------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------------


@dataclass
class DOut:
    """A discriminator's output.

    ``logits``: (B,) real/fake logits, or (B, K) class logits for a K-class discriminator.
    ``features``: an intermediate layer (B, F), for feature matching. ``heads``: extra outputs of
    heads sharing the body (InfoGAN's Q: ``{"q_cat": ..., "q_cont": ...}``).
    """

    logits: Tensor
    features: Tensor | None = None
    heads: dict[str, Tensor] = field(default_factory=dict)


def real_logit(logits: Tensor) -> Tensor:
    """D's real/fake logit (B,): ``logits`` as they are, or for (B, K) class logits of a K-class D, whose fake
    class has its logit fixed at 0 (Salimans et al. 2016), log Z = logsumexp of the K, so D(x) = Z / (Z + 1)."""
    return logits if logits.dim() == 1 else logits.float().logsumexp(1)


@dataclass
class Nets:
    """The run's networks: G, D, and extra ones by role (e.g. ``encoder``)."""

    generator: nn.Module
    discriminator: nn.Module
    extra: dict[str, nn.Module] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # extra role -> "generator" | "discriminator"
    parallel: dict[str, nn.Module] = field(default_factory=dict)  # role -> its DistributedDataParallel wrapper

    def named(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator, **self.extra}

    def put(self, role: str, module: nn.Module) -> None:
        """Set network ``role`` (the inverse of ``named()``): G and D are attributes, other roles ``extra``."""
        if role in ("generator", "discriminator"):
            setattr(self, role, module)
        else:
            self.extra[role] = module

    def group_of(self, role: str) -> str:
        return role if role in ("generator", "discriminator") else self.groups[role]

    def call(self, role: str, phase: str) -> nn.Module:
        """The module to run for ``role`` in ``phase``: its DDP wrapper in the phase that trains it (so its
        gradients are averaged over processes), the bare module otherwise (and always in a single process)."""
        if role in self.parallel and self.group_of(role) == phase:
            return self.parallel[role]
        return self.named()[role]

    def parameters_of(self, group: str) -> list[nn.Parameter]:
        """The parameters one optimizer trains: its main network plus the extra ones in its group."""
        mods = [self.generator if group == "generator" else self.discriminator]
        mods += [m for role, m in self.extra.items() if self.groups.get(role) == group]
        candidates = [p for m in mods for p in m.parameters()]
        if group == "generator" and hasattr(self.discriminator, "generator_parameters"):
            # Heads sharing D's body but trained with G too (InfoGAN's Q is updated by both).
            candidates += list(self.discriminator.generator_parameters())
        params: list[nn.Parameter] = []
        seen: set[int] = set()
        for p in candidates:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        return params


class Step:
    """One D or G step's inputs, with the fake batch and D outputs computed once and cached."""

    def __init__(self, phase: Literal["discriminator", "generator"], batch: Batch, latent: dict[str, Tensor],
                 nets: Nets, step: int, total_steps: int) -> None:
        self.phase = phase
        self.batch = batch
        self.latent = latent
        self.nets = nets
        self.step = step
        self.total_steps = total_steps
        self._cache: dict[str, Any] = {}

    @property
    def real(self) -> Tensor:
        return self.batch.x

    @property
    def fake(self) -> Tensor:
        """G(z); detached in the D phase, so D's loss does not backpropagate into G."""
        if "fake" not in self._cache:
            if self.phase == "discriminator":
                with torch.no_grad():
                    self._cache["fake"] = self.nets.generator(**self.latent)
            else:
                self._cache["fake"] = self.nets.call("generator", self.phase)(**self.latent)
        return self._cache["fake"]

    def run(self, role: str, *args: Any, **kwargs: Any) -> Any:
        """Run network ``role`` (``generator``, ``discriminator`` or an extra one) the way this phase trains it."""
        return self.nets.call(role, self.phase)(*args, **kwargs)

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def d_real(self) -> DOut:
        return self.cached("d_real", lambda: self.run("discriminator", self.real))

    def d_fake(self) -> DOut:
        return self.cached("d_fake", lambda: self.run("discriminator", self.fake))

    def d_shifted(self, shift: int) -> DOut:
        """D on the real batch, each image moved by up to ``shift`` pixels; cached, so the consistency terms
        (the ``consistency`` regularizer, infogan's ``lambda_aug``) share one pass."""
        return self.cached(f"d_shifted_{shift}", lambda: self.run("discriminator", random_shift(self.real, shift)))

    def d_together(self, parts: dict[str, Tensor]) -> None:
        """Cache D's outputs on several batches (``{"d_real": x, ...}``) from one forward over them all.

        Only for a discriminator that sets ``per_example = True`` (no batch norm, no minibatch
        discrimination): then the numbers are those of one call per batch, in fewer kernel launches. Otherwise,
        or if any key is cached already, nothing happens and each batch is run when first asked for."""
        if not getattr(self.nets.discriminator, "per_example", False) or any(k in self._cache for k in parts):
            return
        out = self.run("discriminator", torch.cat(list(parts.values())))
        sizes = [len(x) for x in parts.values()]
        feats = out.features.split(sizes) if out.features is not None else (None,) * len(sizes)
        for key, logits, f in zip(parts, out.logits.split(sizes), feats, strict=True):
            self._cache[key] = DOut(logits=logits, features=f)


# ------------------------------------------------------------------------------------------------
# Objectives
# ------------------------------------------------------------------------------------------------

Losses = dict[str, Tensor]  # named terms; the loop sums them and logs each


class Loss:
    """An adversarial objective: the D and G losses of one step, as named terms."""

    def discriminator_loss(self, step: Step) -> Losses:
        raise NotImplementedError

    def generator_loss(self, step: Step) -> Losses:
        raise NotImplementedError


class LogitLoss(Loss):
    """A loss defined on real/fake logits alone. Subclasses write ``d_loss`` and ``g_loss``."""

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def discriminator_loss(self, step: Step) -> Losses:
        return {"d_adv": self.d_loss(step.d_real().logits, step.d_fake().logits)}

    def generator_loss(self, step: Step) -> Losses:
        return {"g_adv": self.g_loss(step.d_fake().logits)}


class Regularizer:
    """An extra loss term. ``phases`` says which steps it joins; it returns named terms."""

    phases: tuple[str, ...] = ("discriminator",)

    def check(self, nets: Nets, data: dict[str, Any]) -> str | None:
        """Why this regularizer cannot work with these networks or this data (its description: ``shape`` of
        one example, ``kind``, ...), or None; checked before a run starts."""
        return None

    def __call__(self, step: Step) -> Losses:
        raise NotImplementedError


class Metric:
    """Scores a trained generator. ``applies`` says whether it fits its data and plugin.

    Both get a *source*: a run (:class:`gancore.state.TrainState`) or an exported model
    (:class:`gancore.evaluate.OnnxSource`), each with ``data_info``, ``config`` (``plugin`` and
    ``data.name``), ``step`` and ``generate(n, seed) -> Tensor``.
    """

    def applies(self, state: Any) -> bool:
        return True

    def unavailable(self, state: Any) -> str | None:
        """Why a metric that fits cannot run here (a missing extra or weights file), or None."""
        return None

    def __call__(self, state: Any) -> dict[str, float]:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------


@dataclass
class ExportModel:
    """A model to export: a module taking positional tensors ``inputs`` and returning ``outputs``."""

    module: nn.Module
    inputs: list[LatentSpec]
    outputs: list[str]
    kind: str  # "generator", "classifier", "encoder", ...
    metadata: dict[str, Any] = field(default_factory=dict)

