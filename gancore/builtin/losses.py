"""The standard adversarial losses on real/fake logits (D(x) = sigmoid(logit))."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from gancore.components import LogitLoss, Losses, Step


@dataclass(kw_only=True)
class NonSaturatingConfig:
    real_label: float = 1.0  # one-sided label smoothing (Salimans et al. 2016): e.g. 0.9; fakes stay 0

    def __post_init__(self) -> None:
        if not 0.5 < self.real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1], got {self.real_label}")


def nonsaturating_d_loss(real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """D's binary cross-entropy on real/fake logits: target ``real_label`` on real (one-sided smoothing below 1),
    t*softplus(-l) + (1-t)*softplus(l), and 0 on fake, softplus(l)."""
    t = real_label
    return (t * F.softplus(-real) + (1 - t) * F.softplus(real)).mean() + F.softplus(fake).mean()


class NonSaturating(LogitLoss):
    """Goodfellow et al. 2014: G maximises log D(G(z)), which does not saturate when D wins early."""

    def __init__(self, cfg: NonSaturatingConfig) -> None:
        self.real_label = cfg.real_label

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return nonsaturating_d_loss(real, fake, self.real_label)

    def g_loss(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()  # -log D(G(z))


MinimaxConfig = NonSaturatingConfig  # the same options: only G's loss differs


class Minimax(NonSaturating):
    """The original minimax game: G minimises log(1 - D(G(z))); saturates early, kept for comparison."""

    def g_loss(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()  # log(1 - D(G(z))) = -softplus(l)


class Hinge(LogitLoss):
    """Hinge loss (Lim & Ye 2017; used by SAGAN/BigGAN)."""

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean()


def feature_matching(real: Tensor, fake: Tensor, norm: str = "l2") -> Tensor:
    """Salimans et al. 2016, sec. 3.1: G matches the batch mean of D's intermediate features on real data,
    ||E f(x) - E f(G(z))||^2 (``l2``), or the mean absolute difference (``l1``, what their code trains with).
    The real statistics are a target: no gradient flows into them."""
    diff = real.detach().float().mean(0) - fake.float().mean(0)
    return diff.pow(2).sum() if norm == "l2" else diff.abs().mean()


def match_features(step: Step, norm: str = "l2") -> Tensor:
    """G's feature-matching term for one step: D's features on the real batch against those on G(z)."""
    real, fake = step.d_real(), step.d_fake()
    if real.features is None or fake.features is None:
        raise ValueError(f"feature matching needs a discriminator that returns DOut.features; "
                         f"{type(step.nets.discriminator).__name__} returns none")
    return feature_matching(real.features, fake.features, norm)


@dataclass(kw_only=True)
class FeatureMatchingConfig(NonSaturatingConfig):
    norm: str = "l2"  # l2: the paper's squared distance; l1: the mean absolute difference

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm not in ("l1", "l2"):
            raise ValueError(f"norm must be l1 or l2, got {self.norm!r}")


class FeatureMatching(NonSaturating):
    """D plays the usual (non-saturating, optionally label-smoothed) game; G matches D's feature statistics
    on real data instead of maximising D's output. Works with any discriminator that returns features."""

    def __init__(self, cfg: FeatureMatchingConfig) -> None:
        super().__init__(cfg)
        self.norm = cfg.norm

    def generator_loss(self, step: Step) -> Losses:
        return {"g_fm": match_features(step, self.norm)}
