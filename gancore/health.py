"""Divergence watch: loss terms kept on the device between log steps, checked for NaN/Inf in one sync."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gancore.components import Nets
from gancore.errors import GanError


class DivergenceError(GanError):
    """Training produced NaN or Inf. Exit code 3: not bad input, but not a success either."""

    exit_code = 3


@dataclass
class Problem:
    what: str  # "loss term 'd_adv'" or "generator weights"
    step: int


class LossWindow:
    """Per-step loss terms since the last log step, as device tensors (no host sync until ``summary``)."""

    def __init__(self) -> None:
        self.values: dict[str, list[Tensor]] = {}
        self.steps: dict[str, list[int]] = {}

    def add(self, step: int, terms: dict[str, Tensor]) -> None:
        for name, v in terms.items():
            self.values.setdefault(name, []).append(v.detach().float())  # bf16 terms are logged in fp32
            self.steps.setdefault(name, []).append(step)

    def summary(self) -> tuple[dict[str, float], Problem | None]:
        """(mean of each term, the first non-finite term and its step or None); one host sync."""
        if not self.values:
            return {}, None
        names = list(self.values)
        stacks = [torch.stack(self.values[n]).float() for n in names]
        finite = [torch.isfinite(s) for s in stacks]
        means = torch.stack([s.mean() for s in stacks]).tolist()
        flags = [f.tolist() for f in finite]
        problem = None
        for name, fl in zip(names, flags, strict=True):
            if not all(fl):
                step = self.steps[name][fl.index(False)]
                if problem is None or step < problem.step:
                    problem = Problem(f"loss term {name!r}", step)
        return dict(zip(names, means, strict=True)), problem

    def clear(self) -> None:
        self.values.clear()
        self.steps.clear()


def nonfinite_weights(nets: Nets) -> str | None:
    """The role of the first network holding a NaN or Inf parameter, or None."""
    named = [(role, list(m.parameters())) for role, m in nets.named().items()]
    named = [(role, ps) for role, ps in named if ps]
    ok = torch.stack([torch.stack([torch.isfinite(p).all() for p in ps]).all() for _, ps in named]).tolist()
    return next((role for (role, _), good in zip(named, ok, strict=True) if not good), None)
