"""The adversarial objective for relaxed sequences, with optional maximum-likelihood help for G.

``kind = "relativistic"`` is the relativistic standard GAN (Jolicoeur-Martineau 2018), which RelGAN
(Nie et al. 2019) found to train Gumbel-softmax text generators best: D scores how much more real a data
sequence looks than a generated one. ``nonsaturating`` is the original GAN's. ``mle_weight`` adds the
teacher-forced negative log-likelihood of the real batch to G's loss, and ``pretrain_steps`` trains G by
MLE alone before the first adversarial step (SeqGAN, RelGAN), so the adversarial game starts from a G that
already writes near-valid sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.builtin.losses import nonsaturating_d_loss
from gancore.components import Loss, Losses, Step


@dataclass(kw_only=True)
class TextLossConfig:
    kind: str = "relativistic"  # relativistic | nonsaturating
    mle_weight: float = 0.0  # x teacher-forced NLL of the real batch, added to G's loss
    pretrain_steps: int = 0  # MLE steps on G before adversarial training starts (a new run only)
    pretrain_lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in ("relativistic", "nonsaturating"):
            raise ValueError(f"kind must be relativistic or nonsaturating, got {self.kind!r}")
        if self.mle_weight < 0 or self.pretrain_steps < 0:
            raise ValueError("mle_weight and pretrain_steps must be >= 0")
        if not 0 < self.pretrain_lr < 1:
            raise ValueError(f"pretrain_lr must be in (0, 1), got {self.pretrain_lr}")


def nll(generator: nn.Module, ids: Tensor, noise: Tensor) -> Tensor:
    """Mean per-token negative log-likelihood of ``ids`` under teacher forcing (end tokens included)."""
    logits = generator.teacher_forced(ids, noise)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids.reshape(-1))


class TextGANLoss(Loss):
    """D on real token ids against G's relaxed one-hots; G by the same game, plus ``mle_weight`` x NLL."""

    def __init__(self, cfg: TextLossConfig) -> None:
        self.cfg = cfg

    def discriminator_loss(self, step: Step) -> Losses:
        real, fake = step.d_real().logits, step.d_fake().logits
        if self.cfg.kind == "relativistic":
            return {"d_adv": F.softplus(fake - real).mean()}
        return {"d_adv": nonsaturating_d_loss(real, fake)}

    def generator_loss(self, step: Step) -> Losses:
        fake = step.d_fake().logits
        if self.cfg.kind == "relativistic":
            with torch.no_grad():
                real = step.d_real().logits
            terms = {"g_adv": F.softplus(real - fake).mean()}
        else:
            terms = {"g_adv": F.softplus(-fake).mean()}
        if self.cfg.mle_weight:
            g = step.nets.generator
            terms["g_mle"] = self.cfg.mle_weight * nll(g, step.real, step.latent["noise"])
        return terms
