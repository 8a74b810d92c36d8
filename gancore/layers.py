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
            if s.categories:
                self.dim += sum(s.categories)
            else:
                self.dim += n * s.classes if s.distribution == "categorical" else n

    def forward(self, latent: dict[str, Tensor]) -> Tensor:
        parts = []
        for s in self.specs:
            v = latent[s.name]
            if s.categories:  # one code per column, each one-hot at its own size
                v = torch.cat([nn.functional.one_hot(v[:, i].long(), k) for i, k in enumerate(s.categories)], 1)
                v = v.to(torch.float32)
            elif s.distribution == "categorical":
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


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, sec. 3.2: features that compare each sample with the rest of its batch,
    so D can see a collapsed batch. Appends ``out_features`` columns to its input."""

    def __init__(self, in_features: int, out_features: int, kernel_dims: int = 5) -> None:
        super().__init__()
        self.out_features, self.kernel_dims = out_features, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, out_features * kernel_dims) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        m = (x @ self.T).view(-1, self.out_features, self.kernel_dims)  # B x O x K
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # B x B x O
        o = torch.exp(-l1).sum(1) - 1.0  # exclude each sample's own term, exp(0) = 1
        return torch.cat([x, o], dim=1)
