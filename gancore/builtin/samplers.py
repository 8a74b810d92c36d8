"""Plain noise samplers: one input named ``noise``."""

from __future__ import annotations

from dataclasses import dataclass

from gancore.components import LatentSpec, Sampler


@dataclass(kw_only=True)
class NoiseConfig:
    dim: int = 100

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")


class NormalSampler(Sampler):
    """z ~ N(0, I)."""

    def __init__(self, cfg: NoiseConfig) -> None:
        self.specs = (LatentSpec("noise", (cfg.dim,), "normal"),)


class UniformSampler(Sampler):
    """z ~ U(-1, 1)^dim."""

    def __init__(self, cfg: NoiseConfig) -> None:
        self.specs = (LatentSpec("noise", (cfg.dim,), "uniform", low=-1.0, high=1.0),)
