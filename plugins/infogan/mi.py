"""The mutual-information term: a variational lower bound of I(c; G(z, c)) (Chen et al. 2016, eq. 5).

L_I = lambda_cat * sum over categorical codes of CE(Q(x), c)
    + lambda_cont * sum over continuous codes of -log N(c; mu_Q(x), sigma^2)
with sigma = 1 (fixed) or Q's own estimate (learnt). Minimising L_I maximises the bound up to the constant
entropy H(c). It joins both phases: in D's step it trains D's body and Q on G's (detached) samples; in G's
step it trains G and Q's own layers, so Q is updated with both networks.

Option ``lambda_real`` (0 = the paper) adds, in D's step, a clustering term on the real batch
(as in CatGAN and IMSAT): E_x H(Q(c|x)) - H(E_x Q(c|x)) for each categorical code. Q then reads real images
with confident and balanced categories, the same categories it must read back from G's samples.

Option ``lambda_aug`` (0 = off) adds, in D's step, IMSAT's self-augmented training (Hu et al. 2017): the
categories Q reads from a real image should not change when the image is shifted by up to ``aug_shift``
pixels, KL(Q(c|x) || Q(c|shift(x))) with Q(c|x) held fixed. It steers the categories towards the kind of
item and away from where the item sits or how wide it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.augment import class_consistency, not_images
from gancore.components import Losses, Nets, Regularizer, Step
from gancore.errors import ConfigError

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
NO_Q = ("regularizer mutual-info needs a discriminator with a Q head for the latent's codes; use "
        "--set discriminator.name=infogan")


@dataclass(kw_only=True)
class MutualInfoConfig:
    lambda_cat: float = 1.0
    lambda_cont: float = 1.0
    lambda_real: float = 0.0
    lambda_aug: float = 0.0
    aug_shift: int = 2

    def __post_init__(self) -> None:
        if min(self.lambda_cat, self.lambda_cont, self.lambda_real, self.lambda_aug) < 0:
            raise ValueError(f"lambda_cat, lambda_cont, lambda_real and lambda_aug must be >= 0, got "
                             f"{self.lambda_cat}, {self.lambda_cont}, {self.lambda_real}, {self.lambda_aug}")
        if self.aug_shift < 1:
            raise ValueError(f"aug_shift must be >= 1 pixel, got {self.aug_shift}")


def categorical_nll(logits: Tensor, codes: Tensor) -> Tensor:
    """Cross-entropy summed over codes, mean over the batch. ``logits`` B x codes x classes, ``codes`` B x codes."""
    return F.cross_entropy(logits.flatten(0, 1), codes.flatten().long(), reduction="sum") / codes.shape[0]


def gaussian_nll(mean: Tensor, codes: Tensor, logstd: Tensor | None = None) -> Tensor:
    """-log N(codes; mean, std^2) summed over codes, mean over the batch; std = 1 unless ``logstd`` is given."""
    if logstd is None:
        nll = 0.5 * (codes - mean).pow(2) + HALF_LOG_2PI
    else:
        nll = 0.5 * ((codes - mean) * torch.exp(-logstd)).pow(2) + logstd + HALF_LOG_2PI
    return nll.sum(1).mean()


def clustering_entropy(logits: Tensor) -> Tensor:
    """Mean conditional entropy minus marginal entropy of the categories, summed over codes (B x codes x classes).

    Low when each example gets one category with confidence and the batch spreads over all of them.
    """
    logp = F.log_softmax(logits, dim=2)
    p = logp.exp()
    conditional = -(p * logp).sum(2).mean(0)
    marginal_p = p.mean(0)
    marginal = -(marginal_p * marginal_p.clamp_min(1e-12).log()).sum(1)
    return (conditional - marginal).sum()


class MutualInfo(Regularizer):
    """InfoGAN's L_I on the fake batch's codes, read back by the discriminator's Q head."""

    phases = ("discriminator", "generator")

    def __init__(self, cfg: MutualInfoConfig) -> None:
        self.cfg = cfg

    def check(self, nets: Nets, data: dict[str, Any]) -> str | None:
        if self.cfg.lambda_aug:
            why = not_images(data, "lambda_aug shifts images")
            return f"{why}; set regularizers.mutual-info.lambda_aug=0" if why else None
        return None

    def __call__(self, step: Step) -> Losses:
        if "categorical" not in step.latent and "continuous" not in step.latent:
            raise ConfigError("regularizer mutual-info needs a latent with codes (inputs named categorical or "
                              "continuous); use --set sampler.name=infogan")
        heads = step.d_fake().heads
        prefix = "d" if step.phase == "discriminator" else "g"
        terms: Losses = {}
        if "categorical" in step.latent and self.cfg.lambda_cat:
            if "q_cat" not in heads:
                raise ConfigError(NO_Q)
            nll = categorical_nll(heads["q_cat"], step.latent["categorical"])
            terms[f"{prefix}_mi_cat"] = self.cfg.lambda_cat * nll
        if "continuous" in step.latent and self.cfg.lambda_cont:
            if "q_cont_mean" not in heads:
                raise ConfigError(NO_Q)
            terms[f"{prefix}_mi_cont"] = self.cfg.lambda_cont * gaussian_nll(
                heads["q_cont_mean"], step.latent["continuous"], heads.get("q_cont_logstd"))
        if self.cfg.lambda_real and step.phase == "discriminator" and "q_cat" in heads:
            terms["d_cluster_real"] = self.cfg.lambda_real * clustering_entropy(step.d_real().heads["q_cat"])
        if self.cfg.lambda_aug and step.phase == "discriminator" and "q_cat" in heads:
            moved = step.d_shifted(self.cfg.aug_shift).heads["q_cat"]
            terms["d_aug_real"] = self.cfg.lambda_aug * class_consistency(step.d_real().heads["q_cat"], moved)
        return terms
