"""InfoGAN's structured latent (Chen et al. 2016): incompressible noise plus the codes G must make readable.

Three named inputs, each left out when empty:

- ``noise``: float, ``noise`` dimensions, normal or uniform(-1, 1);
- ``categorical``: int64, one index per categorical code (code i is ``categorical[i]``-way);
- ``continuous``: float, one value per continuous code, uniform on (-1, 1).

The 28 px default is the paper's MNIST layout: 62 noise dimensions, one 10-way code, 2 continuous codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gancore.components import LatentSpec, Sampler


@dataclass(kw_only=True)
class InfoLatentConfig:
    noise: int = 62
    noise_distribution: Literal["normal", "uniform"] = "uniform"  # the paper's code: z ~ uniform(-1, 1)
    categorical: list[int] = field(default_factory=lambda: [10])  # class count of each categorical code
    continuous: int = 2

    def __post_init__(self) -> None:
        if self.noise < 0 or self.continuous < 0:
            raise ValueError(f"noise and continuous must be >= 0, got {self.noise} and {self.continuous}")
        if any(not isinstance(k, int) or k < 2 for k in self.categorical):
            raise ValueError(f"each categorical code needs 2 or more classes, got {self.categorical}")
        if not self.categorical and not self.continuous:
            raise ValueError("InfoGAN needs at least one code: set categorical=[K] or continuous=N")
        if not self.noise and not self.categorical and not self.continuous:
            raise ValueError("the latent is empty")


def latent_specs(cfg: InfoLatentConfig) -> tuple[LatentSpec, ...]:
    specs = []
    if cfg.noise:
        specs.append(LatentSpec("noise", (cfg.noise,), cfg.noise_distribution))  # type: ignore[arg-type]
    if cfg.categorical:
        ks = tuple(cfg.categorical)
        specs.append(LatentSpec("categorical", (len(ks),), "categorical", dtype="int64", classes=max(ks),
                                categories=ks if len(set(ks)) > 1 else ()))
    if cfg.continuous:
        specs.append(LatentSpec("continuous", (cfg.continuous,), "uniform", low=-1.0, high=1.0))
    return tuple(specs)


class InfoSampler(Sampler):
    """Noise, categorical codes and continuous codes, as separate named inputs."""

    def __init__(self, cfg: InfoLatentConfig) -> None:
        self.cfg = cfg
        self.specs = latent_specs(cfg)
