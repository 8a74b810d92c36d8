"""Weight averaging: an exponential moving average (EMA) of the weights the generator's optimizer trains.

GAN weights jitter from step to step as G chases D; an average over the last thousand or so steps draws
cleaner samples than the last step's weights (Karras et al. 2018, Brock et al. 2019; Yazici et al. 2019).
The averaged copies are what sampling, traversals, evaluation and export use; training never reads them.
Batch-norm running statistics are averaged with the weights, as BigGAN's EMA does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from gancore.components import Nets

PREFIX = "ema."  # checkpoint keys of the averaged copies: ema.<role>.<state-dict key>


class WeightAverage:
    """Averaged copies of the generator group's networks (G and extra networks trained with it, such as
    BiGAN's encoder).

    Before step ``start`` the copies follow the live weights exactly; from then on each G step moves them
    a ``1 - decay`` share of the way towards the live weights.
    """

    def __init__(self, nets: Nets, decay: float, start: int = 0) -> None:
        self.decay, self.start = decay, start
        live = {role: m for role, m in nets.named().items() if nets.group_of(role) == "generator"}
        self.copies: dict[str, nn.Module] = {role: copy.deepcopy(m).requires_grad_(False)
                                             for role, m in live.items()}
        # Pairs of (average, live) tensors, found once: loading a checkpoint copies into them in place.
        self._float: tuple[list[Tensor], list[Tensor]] = ([], [])
        self._other: list[tuple[Tensor, Tensor]] = []
        for role, avg in self.copies.items():
            src = live[role].state_dict()
            for key, a in avg.state_dict().items():
                if a.is_floating_point():
                    self._float[0].append(a)
                    self._float[1].append(src[key])
                else:  # counters such as num_batches_tracked
                    self._other.append((a, src[key]))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the live weights after G step ``step`` (counted from 1)."""
        weight = 1.0 if step <= self.start else 1.0 - self.decay
        torch._foreach_lerp_(self._float[0], self._float[1], weight)
        for a, src in self._other:
            a.copy_(src)

    def state_tensors(self) -> dict[str, Tensor]:
        """The averaged weights as checkpoint tensors, keyed ``ema.<role>.<key>``."""
        return {f"{PREFIX}{role}.{k}": v.detach().cpu().contiguous()
                for role, m in self.copies.items() for k, v in m.state_dict().items()}

    @contextmanager
    def swapped_in(self, nets: Nets) -> Iterator[None]:
        """The averaged copies stand in for the live networks in ``nets`` for the block (pictures, evaluation)."""
        live = {role: nets.named()[role] for role in self.copies}
        _put(nets, self.copies)
        try:
            yield
        finally:
            _put(nets, live)


def _put(nets: Nets, modules: dict[str, nn.Module]) -> None:
    for role, m in modules.items():
        if role == "generator":
            nets.generator = m
        else:
            nets.extra[role] = m


def averaged(state: Any) -> AbstractContextManager[None]:
    """A training state's averaged networks in place of its live ones for the block, if it has them
    (``train.ema``); otherwise the live ones, unchanged."""
    average = getattr(state, "average", None)
    return average.swapped_in(state.nets) if average is not None else nullcontext()
