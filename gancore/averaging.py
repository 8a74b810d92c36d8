"""Weight averaging: an exponential moving average (EMA) of the generator's weights, and of other networks'.

GAN weights jitter from step to step as G chases D; where they do, an average over the last thousand or so
steps draws cleaner samples than the last step's weights (Karras et al. 2018; Yazici et al. 2019; Brock et al.
2019). Where G is still improving steadily the average lags it (bench/averaging.py measures both).
The averaged generator is what sample grids, traversals, evaluation, ``gan sample`` and export use; training
never reads it. ``train.ema_nets`` can add other networks: an averaged classifier (ssgan's D) scores up to about
a point above its last step's weights (Polyak averaging; the mean teacher's model, Tarvainen and Valpola 2017).

Normalisation statistics cannot be averaged like weights: running means of activations of other weights
do not fit the averaged ones, and averaged or copied live statistics spoiled InfoGAN's samples. So before the
average is used or saved, its batch-norm statistics are estimated afresh on prior batches, BigGAN's "standing
statistics" (a virtual batch norm's reference batch is re-run by the same training-mode passes). The other
networks' statistics are estimated likewise on real training examples (an encoder's or a discriminator's input).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor, nn

from gancore.components import Nets, Sampler
from gancore.config import check_roles
from gancore.errors import ConfigError
from gancore.layers import VirtualBatchNorm, rng_kept

PREFIX = "ema."  # checkpoint keys of the averages: ema.<role>.<state-dict key>


def averaged_nets(train: dict[str, Any], live: bool = False) -> list[str]:
    """The networks a reopened run is read through their average (``train.ema_nets`` where ``train.ema`` is on),
    none with ``live``: what export cards and evaluation reports record."""
    return list(train["ema_nets"]) if train["ema"] and not live else []


def _has_norm_statistics(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm | VirtualBatchNorm) for m in module.modules())


def check_averageable(nets: Nets, roles: list[str], data: dict[str, Any]) -> None:
    """Refuse ``train.ema_nets`` entries that name no network of the run, or a network other than G whose
    batch-norm statistics cannot be re-estimated on real examples alone (copying the live ones spoils them)."""
    named = nets.named()
    check_roles(roles, list(named))
    for role in roles:
        module = named[role]
        if role == "generator" or not _has_norm_statistics(module):
            continue
        why = None
        if getattr(module, "joint_latent", False):
            why = "it reads (x, z) pairs"
        elif data.get("kind") not in ("image", "points"):
            why = f"this data's examples are {data.get('kind', 'of unknown kind')}, not images or points"
        if why:
            raise ConfigError(f"train.ema_nets: the {role} has batch-norm layers, whose statistics are re-estimated "
                              f"on real examples alone, and {why}; leave it out of train.ema_nets")


class WeightAverage:
    """Averaged copies of networks, by role (the generator, and any others ``train.ema_nets`` names).

    Before step ``start`` the copies follow the live weights exactly; from then on each G step moves them a
    ``1 - decay`` share of the way towards them. Their normalisation statistics are re-estimated on ``batches``
    batches of ``batch_size`` inputs drawn with a private, fixed RNG, whenever they are used or saved after a step
    that changed them: prior draws for the generator, real examples (``real``, set once the run's data is
    loaded) for the others.
    """

    def __init__(self, modules: dict[str, nn.Module], decay: float, *, sampler: Sampler, batch_size: int,
                 start: int = 0, batches: int = 100, seed: int = 0) -> None:
        self.decay, self.start = decay, start
        self.sampler, self.batch_size, self.batches, self.seed = sampler, batch_size, batches, seed
        self.copies: dict[str, nn.Module] = {role: deepcopy(m).requires_grad_(False) for role, m in modules.items()}
        # (average, live) parameter pairs, found once: optimizer steps and checkpoint loads write them in place.
        self._avg: list[Tensor] = []
        self._src: list[Tensor] = []
        for role, copy in self.copies.items():
            live = dict(modules[role].named_parameters())
            self._avg += [p for _, p in copy.named_parameters()]
            self._src += [live[n].detach() for n, _ in copy.named_parameters()]
        self._norms = {role: [m for m in c.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
                       for role, c in self.copies.items() if _has_norm_statistics(c)}
        self.real: Tensor | None = None  # the training examples, for the statistics of networks other than G
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
        """Estimate the averages' batch-norm statistics for their current weights (a no-op without norm layers,
        or when they are already current unless ``force``); the global RNG is left as it was."""
        if not self._norms or (self._norms_at == self.step and not force):
            return
        for role, norms in self._norms.items():
            net = self.copies[role]
            device = next(net.parameters()).device
            momenta = [m.momentum for m in norms]
            with rng_kept(device):  # dropout, noise layers
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None  # a plain mean over the batches
                was = net.training
                net.train()
                gen = torch.Generator(device=device).manual_seed(self.seed)
                for _ in range(self.batches):
                    if role == "generator":
                        net(**self.sampler.sample(self.batch_size, gen, device))
                    else:
                        net(self._real_batch(gen))
                net.train(was)
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
        self._norms_at = self.step

    def _real_batch(self, gen: torch.Generator) -> Tensor:
        if self.real is None:
            raise RuntimeError("WeightAverage.real must hold the training examples to estimate the statistics of "
                               "a network other than the generator")
        return self.real[torch.randint(0, len(self.real), (self.batch_size,), generator=gen, device=gen.device)]

    def state_tensors(self) -> dict[str, Tensor]:
        """The averaged weights as checkpoint tensors, keyed ``ema.<role>.<key>``."""
        self.refresh_norms()
        return {f"{PREFIX}{role}.{k}": v.detach().cpu().contiguous()
                for role, m in self.copies.items() for k, v in m.state_dict().items()}

    def loaded(self, step: int) -> None:
        """A checkpoint's average (with its statistics) was loaded for ``step``."""
        self.step = self._norms_at = step

    @contextmanager
    def swapped_in(self, nets: Nets) -> Iterator[None]:
        """The averaged networks stand in for the live ones in ``nets`` for the block."""
        self.refresh_norms()
        live = nets.named()
        for role, copy in self.copies.items():
            nets.put(role, copy)
        try:
            yield
        finally:
            for role in self.copies:
                nets.put(role, live[role])


def averaged(state: Any) -> AbstractContextManager[None]:
    """A training state's averaged networks in place of its live ones for the block, if it has them
    (``train.ema``); otherwise the live ones, unchanged."""
    average = getattr(state, "average", None)
    return average.swapped_in(state.nets) if average is not None else nullcontext()
