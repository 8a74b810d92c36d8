"""Weight averaging: an exponential moving average (EMA) of the generator's weights.

GAN weights jitter from step to step as G chases D; where they do, an average over the last thousand or so
steps draws cleaner samples than the last step's weights (Karras et al. 2018; Yazici et al. 2019; Brock et al.
2019). Where G is still improving steadily the average lags it (bench/averaging.py measures both).
The averaged generator is what sample grids, traversals, evaluation, ``gan sample`` and export use; training
never reads it.

Normalisation statistics cannot be averaged like weights: running means of activations of other weights
do not fit the averaged ones, and averaged or copied live statistics spoiled InfoGAN's samples. So before the
average is used or saved, its batch-norm statistics are estimated afresh on prior batches, BigGAN's "standing
statistics" (a virtual batch norm's reference batch is re-run by the same training-mode passes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor, nn

from gancore.components import Nets, Sampler
from gancore.layers import VirtualBatchNorm

PREFIX = "ema."  # checkpoint keys of the average: ema.generator.<state-dict key>


class WeightAverage:
    """An averaged copy of the generator.

    Before step ``start`` the copy follows the live weights exactly; from then on each G step moves it a
    ``1 - decay`` share of the way towards them. Its normalisation statistics are re-estimated on
    ``batches`` batches of ``batch_size`` prior draws (a private, fixed RNG) whenever it is used or saved
    after a step that changed it.
    """

    def __init__(self, generator: nn.Module, decay: float, *, sampler: Sampler, batch_size: int,
                 start: int = 0, batches: int = 100, seed: int = 0) -> None:
        self.decay, self.start = decay, start
        self.sampler, self.batch_size, self.batches, self.seed = sampler, batch_size, batches, seed
        self.copies: dict[str, nn.Module] = {"generator": deepcopy(generator).requires_grad_(False)}
        # (average, live) parameter pairs, found once: optimizer steps and checkpoint loads write them in place.
        g, live = self.copies["generator"], dict(generator.named_parameters())
        self._avg = [p for _, p in g.named_parameters()]
        self._src = [live[n].detach() for n, _ in g.named_parameters()]
        self._norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._stateful = bool(self._norms) or any(isinstance(m, VirtualBatchNorm) for m in g.modules())
        self.step = 0
        self._norms_at: int | None = None  # the step whose weights the statistics were estimated for

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the live weights after G step ``step`` (counted from 1)."""
        weight = 1.0 if step <= self.start else 1.0 - self.decay
        torch._foreach_lerp_(self._avg, self._src, weight)
        self.step = step

    @torch.no_grad()
    def refresh_norms(self, force: bool = False) -> None:
        """Estimate the average's batch-norm statistics for its current weights (a no-op without norm layers,
        or when they are already current unless ``force``); the global RNG is left as it was."""
        if not self._stateful or (self._norms_at == self.step and not force):
            return
        g, norms = self.copies["generator"], self._norms
        device = next(g.parameters()).device
        momenta = [m.momentum for m in norms]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout, noise layers
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a plain mean over the batches
            was = g.training
            g.train()
            gen = torch.Generator(device=device).manual_seed(self.seed)
            for _ in range(self.batches):
                g(**self.sampler.sample(self.batch_size, gen, device))
            g.train(was)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        self._norms_at = self.step

    def state_tensors(self) -> dict[str, Tensor]:
        """The averaged weights as checkpoint tensors, keyed ``ema.generator.<key>``."""
        self.refresh_norms()
        return {f"{PREFIX}{role}.{k}": v.detach().cpu().contiguous()
                for role, m in self.copies.items() for k, v in m.state_dict().items()}

    def loaded(self, step: int) -> None:
        """A checkpoint's average (with its statistics) was loaded for ``step``."""
        self.step = self._norms_at = step

    @contextmanager
    def swapped_in(self, nets: Nets) -> Iterator[None]:
        """The averaged generator stands in for the live one in ``nets`` for the block."""
        self.refresh_norms()
        live = nets.generator
        nets.generator = self.copies["generator"]
        try:
            yield
        finally:
            nets.generator = live


def averaged(state: Any) -> AbstractContextManager[None]:
    """A training state's averaged generator in place of its live one for the block, if it has one
    (``train.ema``); otherwise the live one, unchanged."""
    average = getattr(state, "average", None)
    return average.swapped_in(state.nets) if average is not None else nullcontext()
