"""Regularizers any plugin can switch on in config."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gancore.components import Losses, Regularizer, Step


@dataclass(kw_only=True)
class HistoricalAveragingConfig:
    weight: float = 1e-3
    phases: str = "discriminator"  # discriminator, generator or both: whose parameters are held to their past

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.phases not in ("discriminator", "generator", "both"):
            raise ValueError(f"phases must be discriminator, generator or both, got {self.phases!r}")


class HistoricalAveraging(Regularizer):
    """Salimans et al. 2016, sec. 3.3: ``weight * sum ||theta - (1/t) sum_i theta_i||^2`` over the trained
    network's parameters, the average taken over the values they held at each of its steps so far. It damps
    the oscillations of gradient play. The running averages are saved in checkpoints (``state_dict``)."""

    def __init__(self, cfg: HistoricalAveragingConfig) -> None:
        self.weight = cfg.weight
        self.phases = ("discriminator", "generator") if cfg.phases == "both" else (cfg.phases,)
        self.count = {phase: 0 for phase in self.phases}
        self.average: dict[str, list[Tensor]] = {}

    def __call__(self, step: Step) -> Losses:
        params = step.nets.parameters_of(step.phase)
        avg = self.average.get(step.phase)
        if avg is None or len(avg) != len(params):
            avg = self.average[step.phase] = [p.detach().float().clone() for p in params]
            self.count[step.phase] = 0
        term = sum(((p.float() - a) ** 2).sum() for p, a in zip(params, avg, strict=True))
        n = self.count[step.phase] = self.count[step.phase] + 1
        with torch.no_grad():  # fold this step's values into the average the next step is held to
            for p, a in zip(params, avg, strict=True):
                a.add_((p.detach().float() - a) / n)
        return {f"{step.phase[0]}_hist": self.weight * term}

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"{phase}.count": torch.tensor(self.count[phase]) for phase in self.average}
        for phase, avg in self.average.items():
            out.update({f"{phase}.{i}": a.cpu() for i, a in enumerate(avg)})
        return out

    def load_state_dict(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        self.average = {}
        for phase in self.phases:
            if f"{phase}.count" in tensors:
                self.count[phase] = int(tensors[f"{phase}.count"])
                n = sum(1 for k in tensors if k.startswith(f"{phase}.") and k != f"{phase}.count")
                self.average[phase] = [tensors[f"{phase}.{i}"].to(device) for i in range(n)]
