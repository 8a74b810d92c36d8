"""The standard adversarial losses on real/fake logits (D(x) = sigmoid(logit))."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from gancore.components import LogitLoss


@dataclass(kw_only=True)
class NonSaturatingConfig:
    real_label: float = 1.0  # one-sided label smoothing (Salimans et al. 2016): e.g. 0.9; fakes stay 0

    def __post_init__(self) -> None:
        if not 0.5 < self.real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1], got {self.real_label}")


class NonSaturating(LogitLoss):
    """Goodfellow et al. 2014: G maximises log D(G(z)), which does not saturate when D wins early."""

    def __init__(self, cfg: NonSaturatingConfig) -> None:
        self.real_label = cfg.real_label

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        # BCE with target t on real: t*softplus(-l) + (1-t)*softplus(l); on fake: softplus(l).
        t = self.real_label
        return (t * F.softplus(-real) + (1 - t) * F.softplus(real)).mean() + F.softplus(fake).mean()

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
