"""Small network pieces any plugin can reuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from typing import Self

import torch
from torch import Tensor, nn

from gancore.components import LatentSpec


class LatentInput(nn.Module):
    """Concatenate named latent inputs into one float vector; categoricals become one-hot."""

    def __init__(self, specs: Sequence[LatentSpec]) -> None:
        super().__init__()
        self.specs = tuple(specs)
        # one-hots take the module's float dtype (an fp16 export halves it): an empty, unsaved buffer follows
        # .half() and .to(); a fixed float32 would meet half-precision noise and weights in the first layer
        self.register_buffer("dtype_probe", torch.empty(0), persistent=False)
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
                v = v.to(self.dtype_probe.dtype)
            elif s.distribution == "categorical":
                v = nn.functional.one_hot(v.long(), s.classes).to(self.dtype_probe.dtype)
            parts.append(v.flatten(1))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015: weights from N(0, 0.02), batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | VirtualBatchNorm):
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


class GaussianNoise(nn.Module):
    """Additive N(0, sigma^2) noise in training, identity in eval: the input and hidden noise of the
    Improved-GAN discriminators, which keeps D from fitting the few labelled examples."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation (Salimans et al. 2016, sec. 3.4): each example is normalised with the
    statistics of a fixed reference batch combined with its own, so an output never depends on the other
    examples of its batch.

    The network that holds these layers runs its reference batch through them first, inside
    :func:`reference_pass`; each layer keeps those statistics (with their graph, in training) for the
    forward pass that follows, and a detached copy as buffers, which eval mode and export use. Statistics are
    per channel: over the batch and any spatial dimensions for the reference, over the spatial dimensions
    for one example (for 2-D input the example's own value).
    """

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.eps = eps
        self.own = 1.0 / (reference_size + 1)  # an example's weight against the reference batch's
        self.register_buffer("ref_mean", torch.zeros(num_features))
        self.register_buffer("ref_sq", torch.ones(num_features))
        self.recording = False
        self._live: tuple[Tensor, Tensor] | None = None

    def _shape(self, x: Tensor, v: Tensor) -> Tensor:
        return v.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: Tensor) -> Tensor:
        spatial = list(range(2, x.dim()))
        if self.recording:
            mean, sq = x.mean([0, *spatial]), (x * x).mean([0, *spatial])
            self._live = (mean, sq)
            with torch.no_grad():
                self.ref_mean.copy_(mean)
                self.ref_sq.copy_(sq)
        else:
            ref_mean, ref_sq = self._live if self.training and self._live is not None else (self.ref_mean,
                                                                                              self.ref_sq)
            ex_mean = x.mean(spatial, keepdim=True) if spatial else x
            ex_sq = (x * x).mean(spatial, keepdim=True) if spatial else x * x
            mean = self.own * ex_mean + (1 - self.own) * self._shape(x, ref_mean)
            sq = self.own * ex_sq + (1 - self.own) * self._shape(x, ref_sq)
            return self._norm(x, mean, sq)
        return self._norm(x, self._shape(x, mean), self._shape(x, sq))

    def _norm(self, x: Tensor, mean: Tensor, sq: Tensor) -> Tensor:
        var = (sq - mean * mean).clamp_min(0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self._shape(x, self.weight) + self._shape(x, self.bias)


def add_reference_batch(module: nn.Module, latent: Sequence[LatentSpec], size: int, seed: int) -> None:
    """Draw ``module``'s virtual-batch-norm reference batch once, from the latent's own distributions with ``seed``,
    and keep it as buffers ``reference_<input>``, so every checkpoint holds it (fixed at the start, as the paper)."""
    from gancore.components import draw

    gen = torch.Generator().manual_seed(seed)
    for s in latent:
        module.register_buffer(f"reference_{s.name}", draw(s, size, gen, torch.device("cpu")))


def reference_batch(module: nn.Module, latent: Sequence[LatentSpec]) -> dict[str, Tensor]:
    """The latent inputs of the reference batch ``add_reference_batch`` kept on ``module``."""
    return {s.name: getattr(module, f"reference_{s.name}") for s in latent}


class ReferenceBatchNet(nn.Module):
    """Base for a network whose VirtualBatchNorm layers read a reference batch of its own latent inputs, kept by
    :func:`add_reference_batch`. Subclasses keep their latent specs in ``latent``, implement ``reference_net``
    (the pass the reference batch goes through: latent dict to output) and call :meth:`reference_pass_in_training`
    at the top of ``forward``. A network without such layers (batch norm chosen in config) is left alone.

    Training records the reference statistics at every forward pass, so they follow the weights and carry their
    gradient. The optimizer step that follows would leave the buffers eval mode and export read one step behind
    the weights, so switching to eval mode records them afresh for the current weights, as does a checkpoint
    (:func:`record_reference_statistics`)."""

    latent: list[LatentSpec]

    def reference_net(self, latent: dict[str, Tensor]) -> object:
        raise NotImplementedError

    @cached_property
    def _virtual(self) -> bool:  # the layers are fixed once built
        return any(isinstance(m, VirtualBatchNorm) for m in self.modules())

    def _reference_pass(self) -> None:
        reference_pass(self, lambda: self.reference_net(reference_batch(self, self.latent)))

    def reference_pass_in_training(self) -> None:
        """In training, :func:`reference_pass` over the reference batch; a no-op in eval mode, which reads the
        recorded statistics."""
        if self.training and self._virtual:
            self._reference_pass()

    def record_reference(self) -> None:
        """Record the reference statistics for the current weights: without autograd, with the network's other
        layers in eval mode (no dropout or noise, batch-norm statistics left alone) and the RNG left as it was, so
        training runs the same with or without it."""
        if not self._virtual:
            return
        was = self.training
        nn.Module.train(self, False)
        try:
            with torch.no_grad(), rng_kept(next(self.buffers()).device):
                self._reference_pass()
        finally:
            nn.Module.train(self, was)

    def train(self, mode: bool = True) -> Self:
        was = self.training
        super().train(mode)
        if was and not mode:
            self.record_reference()
        return self


def record_reference_statistics(module: nn.Module) -> None:
    """Record the reference statistics of every :class:`ReferenceBatchNet` in ``module`` for its current weights
    (before its state is saved)."""
    for m in module.modules():
        if isinstance(m, ReferenceBatchNet):
            m.record_reference()


def reference_pass_of_batch(module: nn.Module, latent: Sequence[LatentSpec],
                            net: Callable[[dict[str, Tensor]], object]) -> None:
    """In training, :func:`reference_pass` over ``net`` fed ``module``'s reference batch; kept for plugins written
    before :class:`ReferenceBatchNet`, which also keeps eval mode's statistics current."""
    if module.training:
        reference_pass(module, lambda: net(reference_batch(module, latent)))


def rng_kept(device: torch.device) -> AbstractContextManager[object]:
    """The global RNG (and ``device``'s, on a GPU) restored after the block: for passes that must not shift
    training's random stream."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def reference_pass(module: nn.Module, run: Callable[[], object]) -> None:
    """Run ``module``'s reference batch (``run``) so every VirtualBatchNorm layer in it records its statistics.

    Called in training mode before each forward pass, so the reference statistics follow the weights (and
    carry their gradient) as in the paper; eval mode skips it and uses the recorded buffers."""
    layers = [m for m in module.modules() if isinstance(m, VirtualBatchNorm)]
    for layer in layers:
        layer.recording = True
    try:
        run()
    finally:
        for layer in layers:
            layer.recording = False


@contextmanager
def frozen_norm_stats(*modules: nn.Module) -> Iterator[None]:
    """Batch-norm layers in ``modules`` still normalise with each batch's own statistics in training mode, but
    their running statistics, which eval mode uses, do not move for the block.

    For auxiliary passes on inputs from another distribution than the one a network serves: G on E(x) in
    BiGAN's cycle would otherwise mix E(x)'s statistics into those G samples the prior with."""
    saved = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for module in modules for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m, _, _ in saved:
        m.momentum = 0.0  # running = (1 - momentum) * running + momentum * batch: unchanged
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:  # momentum None averages over this count
                m.num_batches_tracked.copy_(count)
