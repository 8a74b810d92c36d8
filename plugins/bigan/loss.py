"""The BiGAN game: D tells (x, E(x)) from (G(z), z); G and E, trained together, try to make it fail."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.builtin.losses import nonsaturating_d_loss
from gancore.components import DOut, Loss, Losses, Step
from gancore.errors import ConfigError


@dataclass(kw_only=True)
class BiGANLossConfig:
    encoder: str = "encoder"  # the role of the encoder under [networks]
    real_label: float = 1.0  # one-sided label smoothing of the (x, E(x)) pairs
    # explicit cycles beside the game (ALICE, Li et al. 2017), for G and E: weight x the mean squared error
    # of G(E(x)) against x, and of E(G(z)) against z (the latter is the paper's latent regressor in the game)
    cycle_x: float = 0.0
    cycle_z: float = 0.0

    def __post_init__(self) -> None:
        if not 0.5 < self.real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1], got {self.real_label}")
        if self.cycle_x < 0 or self.cycle_z < 0:
            raise ValueError(f"cycle_x and cycle_z must be >= 0, got {self.cycle_x} and {self.cycle_z}")


def pair_losses(real: Tensor, fake: Tensor, real_label: float = 1.0) -> tuple[Tensor, Tensor]:
    """(D's loss, G and E's loss) from the logits of (x, E(x)) pairs (``real``) and (G(z), z) pairs (``fake``).

    D: -log D(x, E(x)) - log(1 - D(G(z), z)), real targets smoothed to ``real_label``. G and E: the same
    game with the labels swapped, -log D(G(z), z) - log(1 - D(x, E(x))): non-saturating for both, as the
    paper trains them."""
    return nonsaturating_d_loss(real, fake, real_label), F.softplus(-fake).mean() + F.softplus(real).mean()


class BiGANLoss(Loss):
    def __init__(self, cfg: BiGANLossConfig) -> None:
        self.cfg = cfg

    def _pairs(self, step: Step) -> tuple[DOut, DOut, Tensor]:
        nets = step.nets
        if self.cfg.encoder not in nets.extra:
            raise ConfigError(f"loss bigan needs an encoder network under [networks.{self.cfg.encoder}] "
                              f"(name bigan, group generator); the bigan recipe sets it")
        name = nets.extra[self.cfg.encoder].name
        if step.phase == "discriminator":
            with torch.no_grad():  # E is trained in the generator's step only
                z_real = nets.extra[self.cfg.encoder](step.real)
        else:
            z_real = step.run(self.cfg.encoder, step.real)
        real = step.run("discriminator", step.real, **{name: z_real})
        fake = step.run("discriminator", step.fake, **step.latent)
        return real, fake, z_real

    def _terms(self, step: Step, side: int, prefix: str) -> tuple[Losses, Tensor]:
        """The joint game, plus the same game on each unary score D returns (BigBiGAN: the terms are summed);
        also E(x), which the x-cycle feeds to G."""
        real, fake, z_real = self._pairs(step)
        out = {f"{prefix}_adv": pair_losses(real.logits, fake.logits, self.cfg.real_label)[side]}
        for name in sorted(real.heads.keys() & {"unary_x", "unary_z"}):
            out[f"{prefix}_{name}"] = pair_losses(real.heads[name], fake.heads[name], self.cfg.real_label)[side]
        return out, z_real

    def discriminator_loss(self, step: Step) -> Losses:
        return self._terms(step, 0, "d")[0]

    def generator_loss(self, step: Step) -> Losses:
        out, z_real = self._terms(step, 1, "ge")
        name = step.nets.extra[self.cfg.encoder].name
        if self.cfg.cycle_x:
            rec = step.run("generator", **{name: z_real})
            out["ge_cycle_x"] = self.cfg.cycle_x * (rec - step.real).pow(2).mean()
        if self.cfg.cycle_z:
            z = step.latent[name]
            out["ge_cycle_z"] = self.cfg.cycle_z * (step.run(self.cfg.encoder, step.fake) - z).pow(2).mean()
        return out
