"""Small network pieces any plugin can reuse."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gancore.components import LatentSpec


class LatentInput(nn.Module):
    """Concatenate named latent inputs into one float vector; categoricals become one-hot."""

    def __init__(self, specs: Sequence[LatentSpec]) -> None:
        super().__init__()
        self.specs = tuple(specs)
        self.dim = 0
        for s in self.specs:
            n = 1
            for d in s.shape:
                n *= d
            self.dim += n * s.classes if s.distribution == "categorical" else n

    def forward(self, latent: dict[str, Tensor]) -> Tensor:
        parts = []
        for s in self.specs:
            v = latent[s.name]
            if s.distribution == "categorical":
                v = nn.functional.one_hot(v.long(), s.classes).to(torch.float32)
            parts.append(v.flatten(1))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015: weights from N(0, 0.02), batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
