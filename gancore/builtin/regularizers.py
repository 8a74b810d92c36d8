"""Regularizers any plugin can switch on in config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gancore.augment import class_consistency, not_images
from gancore.components import Losses, Nets, Regularizer, Step, real_logit


@dataclass(kw_only=True)
class HistoricalAveragingConfig:
    weight: float = 1e-3
    phases: str = "discriminator"  # discriminator, generator or both: whose parameters are held to their past

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.phases not in ("discriminator", "generator", "both"):
            raise ValueError(f"phases must be discriminator, generator or both, got {self.phases!r}")


class HistoricalAveraging(Regularizer):
    """Salimans et al. 2016, sec. 3.3: ``weight * sum ||theta - (1/t) sum_i theta_i||^2`` over the trained
    network's parameters, the average taken over the values they held at each of its steps so far. It damps
    the oscillations of gradient play. The running averages are saved in checkpoints (``state_dict``)."""

    def __init__(self, cfg: HistoricalAveragingConfig) -> None:
        self.weight = cfg.weight
        self.phases = ("discriminator", "generator") if cfg.phases == "both" else (cfg.phases,)
        self.count = {phase: 0 for phase in self.phases}
        self.average: dict[str, list[Tensor]] = {}

    def __call__(self, step: Step) -> Losses:
        params = step.nets.parameters_of(step.phase)
        avg = self.average.get(step.phase)
        if avg is None or len(avg) != len(params):
            avg = self.average[step.phase] = [p.detach().float().clone() for p in params]
            self.count[step.phase] = 0
        term = sum(((p.float() - a) ** 2).sum() for p, a in zip(params, avg, strict=True))
        n = self.count[step.phase] = self.count[step.phase] + 1
        with torch.no_grad():  # fold this step's values into the average the next step is held to
            for p, a in zip(params, avg, strict=True):
                a.add_((p.detach().float() - a) / n)
        return {f"{step.phase[0]}_hist": self.weight * term}

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"{phase}.count": torch.tensor(self.count[phase]) for phase in self.average}
        for phase, avg in self.average.items():
            out.update({f"{phase}.{i}": a.cpu() for i, a in enumerate(avg)})
        return out

    def load_state_dict(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        self.average = {}
        for phase in self.phases:
            if f"{phase}.count" in tensors:
                self.count[phase] = int(tensors[f"{phase}.count"])
                n = sum(1 for k in tensors if k.startswith(f"{phase}.") and k != f"{phase}.count")
                self.average[phase] = [tensors[f"{phase}.{i}"].to(device) for i in range(n)]


@dataclass(kw_only=True)
class GradientPenaltyConfig:
    gamma: float = 10.0
    every: int = 1  # lazy regularisation (Karras et al. 2020): apply on every Nth step, scaled by N

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")


def _needs_d_of_x_alone(nets: Nets, what: str) -> str | None:
    if getattr(nets.discriminator, "joint_latent", False):
        return f"{what}, and this discriminator judges (x, z) pairs (BiGAN); remove it from the config"
    return None


def gradient_penalty(step: Step, x: Tensor) -> Tensor:
    """The mean over D's verdicts of ||grad D||^2 with respect to that verdict's input, differentiable in D's
    weights. A PacGAN D gives one verdict per pack of examples, so the norm is the pack's, not an example's."""
    x = x.detach().requires_grad_(True)
    logits = real_logit(step.run("discriminator", x).logits)
    (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True)
    return grad.float().pow(2).sum() / len(logits)  # each example's input feeds one verdict


class R1(Regularizer):
    """Zero-centred gradient penalty on real data (Mescheder et al. 2018): ``gamma/2 * E||grad D(x)||^2``.
    It keeps D flat on the data, so training converges instead of circling; the standard D regulariser of
    StyleGAN. ``every`` > 1 applies it on every Nth training step at N times the weight."""

    on = "real"

    def __init__(self, cfg: GradientPenaltyConfig) -> None:
        self.gamma, self.every = cfg.gamma, cfg.every

    def check(self, nets: Nets, data: dict[str, Any]) -> str | None:
        return _needs_d_of_x_alone(nets, "penalises the gradient of D(x) alone")

    def __call__(self, step: Step) -> Losses:
        # gamma 0 switches it off (a recipe's penalty can be dropped with --set); the step, not a counter,
        # picks the lazy steps, so a resumed run keeps the same rhythm
        if not self.gamma or step.step % self.every:
            return {}
        x = step.real if self.on == "real" else step.fake
        return {f"d_{type(self).__name__.lower()}": 0.5 * self.gamma * self.every * gradient_penalty(step, x)}


class R2(R1):
    """The same penalty on generated samples (Mescheder et al. 2018)."""

    on = "fake"


@dataclass(kw_only=True)
class ConsistencyConfig:
    weight: float = 1.0
    shift: int = 2  # pixels

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.shift < 1:
            raise ValueError(f"shift must be >= 1 pixel, got {self.shift}")


class Consistency(Regularizer):
    """D should read a real image and a copy moved by a few pixels alike. A K-class D (ssgan) is pulled by
    ``weight * KL(p(y|x) || p(y|shift(x)))`` with the unmoved reading held fixed (the Pi-model and IMSAT's
    self-augmented training: unlabelled images teach the classifier what does not change the class); a
    real/fake D by ``weight * (D(x) - D(shift(x)))^2`` (bCR, Zhao et al. 2020)."""

    def __init__(self, cfg: ConsistencyConfig) -> None:
        self.weight, self.shift = cfg.weight, cfg.shift

    def check(self, nets: Nets, data: dict[str, Any]) -> str | None:
        return _needs_d_of_x_alone(nets, "compares D(x) on moved copies of x") or not_images(data, "it moves images")

    def __call__(self, step: Step) -> Losses:
        if not self.weight:  # weight 0 switches a recipe's term off, and saves D's pass on the moved copy
            return {}
        logits = step.d_real().logits
        moved = step.d_shifted(self.shift).logits
        if logits.dim() > 1:
            return {"d_consistency": self.weight * class_consistency(logits, moved)}
        return {"d_consistency": self.weight * (logits.float() - moved.float()).pow(2).mean()}
