"""2-D Gaussian mixtures and their mode metrics (the PacGAN / VEEGAN protocol).

ring: 8 Gaussians on the unit circle, sigma 0.01. grid: 25 Gaussians at {-4,-2,0,2,4}^2, sigma 0.05.
A sample is high quality when it lies within 3 sigma of its nearest mode; a mode is captured when at
least one high-quality sample is nearest to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gancore.components import TensorData


def ring_modes() -> tuple[Tensor, float]:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([torch.cos(angles), torch.sin(angles)], 1).float(), 0.01


def grid_modes() -> tuple[Tensor, float]:
    v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(v, v), 0.05


MIXTURES = {"ring": ring_modes, "grid": grid_modes}


@dataclass(kw_only=True)
class MixtureConfig:
    points: int = 100_000
    seed: int = 0  # the data's own seed, so every run sees the same 100k points

    def __post_init__(self) -> None:
        if self.points < 1:
            raise ValueError(f"points must be >= 1, got {self.points}")


def mixture(name: str, cfg: MixtureConfig) -> TensorData:
    modes, sigma = MIXTURES[name]()
    g = torch.Generator().manual_seed(cfg.seed)
    which = torch.randint(0, len(modes), (cfg.points,), generator=g)
    x = modes[which] + sigma * torch.randn(cfg.points, 2, generator=g)
    lim = float(modes.abs().max()) + 10 * sigma
    return TensorData(x=x, y=which, kind="points", value_range=(-lim, lim), classes=[str(i) for i in range(len(modes))],
                      info={"dataset": name, "modes": modes.tolist(), "sigma": sigma})


def dataset(name: str):
    """The registered builder of mixture ``name``; a held-out split draws other points."""

    def build(cfg: MixtureConfig, *, root: str = "", train: bool = True) -> TensorData:
        return mixture(name, cfg if train else MixtureConfig(points=cfg.points, seed=cfg.seed + 1))

    return build


ring = dataset("ring")
grid = dataset("grid")


def mode_metrics(samples: Tensor, modes: Tensor, sigma: float) -> dict[str, float]:
    """Modes captured, % high-quality samples and the reverse KL of the high-quality mode histogram."""
    d = torch.cdist(samples.double(), modes.double())  # N x K
    dist, nearest = d.min(1)
    hq = dist < 3 * sigma
    counts = torch.bincount(nearest[hq], minlength=len(modes)).double()
    captured = int((counts > 0).sum())
    if counts.sum() > 0:
        q = counts / counts.sum()
        p = 1.0 / len(modes)
        reverse_kl = float((q[q > 0] * (q[q > 0] / p).log()).sum())
    else:
        reverse_kl = float("inf")
    return {"modes": float(captured), "modes_total": float(len(modes)),
            "high_quality_pct": 100.0 * float(hq.double().mean()), "reverse_kl": reverse_kl}
