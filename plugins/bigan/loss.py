"""The BiGAN game: D tells (x, E(x)) from (G(z), z); G and E, trained together, try to make it fail."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.augment import random_shift
from gancore.builtin.losses import nonsaturating_d_loss
from gancore.components import DOut, Loss, Losses, Step
from gancore.errors import ConfigError
from gancore.layers import frozen_norm_stats


@dataclass(kw_only=True)
class BiGANLossConfig:
    encoder: str = "encoder"  # the role of the encoder under [networks]
    real_label: float = 1.0  # one-sided label smoothing of the (x, E(x)) pairs
    # explicit cycles beside the game (ALICE, Li et al. 2017), for G and E: weight x the mean squared error
    # of G(E(x)) against x, and of E(G(z)) against z (the latter is the paper's latent regressor in the game)
    cycle_x: float = 0.0
    cycle_z: float = 0.0
    # E should read a real image and a copy moved by up to consistency_shift pixels alike: weight x the mean
    # squared distance of E(moved x) from E(x), E(x) held fixed (as the Pi-model's consistency for a classifier)
    consistency: float = 0.0
    consistency_shift: int = 2

    def __post_init__(self) -> None:
        if not 0.5 < self.real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1], got {self.real_label}")
        if self.cycle_x < 0 or self.cycle_z < 0 or self.consistency < 0:
            raise ValueError(f"cycle_x, cycle_z and consistency must be >= 0, got {self.cycle_x}, {self.cycle_z} "
                             f"and {self.consistency}")
        if self.consistency_shift < 1:
            raise ValueError(f"consistency_shift must be >= 1 pixel, got {self.consistency_shift}")


def pair_losses(real: Tensor, fake: Tensor, real_label: float = 1.0) -> tuple[Tensor, Tensor]:
    """(D's loss, G and E's loss) from the logits of (x, E(x)) pairs (``real``) and (G(z), z) pairs (``fake``).

    D: -log D(x, E(x)) - log(1 - D(G(z), z)), real targets smoothed to ``real_label``. G and E: the same
    game with the labels swapped, -log D(G(z), z) - log(1 - D(x, E(x))): non-saturating for both, as the
    paper trains them."""
    return nonsaturating_d_loss(real, fake, real_label), F.softplus(-fake).mean() + F.softplus(real).mean()


class BiGANLoss(Loss):
    def __init__(self, cfg: BiGANLossConfig) -> None:
        self.cfg = cfg

    def _encoder(self, step: Step) -> nn.Module:
        if self.cfg.encoder not in step.nets.extra:
            raise ConfigError(f"loss bigan needs an encoder network under [networks.{self.cfg.encoder}] "
                              f"(name bigan, group generator); the bigan recipe sets it")
        return step.nets.extra[self.cfg.encoder]

    def _encoded(self, step: Step) -> Tensor:
        """E(x) of the real batch, once per step: the pairs, the x-cycle and the consistency term share it."""
        e = self._encoder(step)

        def encode() -> Tensor:
            if step.phase == "discriminator":
                with torch.no_grad():  # E is trained in the generator's step only
                    return e(step.real)
            return step.run(self.cfg.encoder, step.real)

        return step.cached("encoded", encode)

    def _pairs(self, step: Step) -> tuple[DOut, DOut]:
        real = step.run("discriminator", step.real, **{self._encoder(step).name: self._encoded(step)})
        fake = step.run("discriminator", step.fake, **step.latent)
        return real, fake

    def _terms(self, step: Step, side: int, prefix: str) -> Losses:
        """The joint game, plus the same game on each unary score D returns (BigBiGAN: the terms are summed)."""
        real, fake = self._pairs(step)
        out = {f"{prefix}_adv": pair_losses(real.logits, fake.logits, self.cfg.real_label)[side]}
        for name in sorted(real.heads.keys() & {"unary_x", "unary_z"}):
            out[f"{prefix}_{name}"] = pair_losses(real.heads[name], fake.heads[name], self.cfg.real_label)[side]
        return out

    def discriminator_loss(self, step: Step) -> Losses:
        return self._terms(step, 0, "d")

    def generator_loss(self, step: Step) -> Losses:
        out = self._terms(step, 1, "ge")
        name = self._encoder(step).name
        # each network keeps the batch-norm running statistics of what it serves, G of the prior and E of real
        # images: the cycles' passes on the other's outputs leave them alone (else the x-cycle costs G's
        # samples about 2.5 points of Frechet distance)
        if self.cfg.cycle_x:
            with frozen_norm_stats(step.nets.generator):
                rec = step.run("generator", **{name: self._encoded(step)})
            out["ge_cycle_x"] = self.cfg.cycle_x * (rec - step.real).pow(2).mean()
        if self.cfg.consistency:
            moved = step.run(self.cfg.encoder, random_shift(step.real, self.cfg.consistency_shift))
            out["ge_consistency"] = self.cfg.consistency * (moved - self._encoded(step).detach()).pow(2).mean()
        if self.cfg.cycle_z:
            z = step.latent[name]
            with frozen_norm_stats(self._encoder(step)):
                back = step.run(self.cfg.encoder, step.fake)
            out["ge_cycle_z"] = self.cfg.cycle_z * (back - z).pow(2).mean()
        return out
