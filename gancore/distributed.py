"""Data-parallel training over processes started by torchrun (or ``gan train --nproc N``).

Each rank holds a shard of the in-memory data and its own latent and data RNGs; G, D and extra networks are
wrapped in DistributedDataParallel, which averages their gradients. Rank 0 alone logs, draws pictures,
evaluates and writes checkpoints, in the single-process format, so a run can resume with any number of
processes. Backends: NCCL on CUDA, gloo on CPU. Multi-node runs use torchrun's rendezvous unchanged.
"""

from __future__ import annotations

import gc
import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gancore.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in the job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> World:
    """Join the process group torchrun set up (idempotent); a single process gets :data:`SINGLE`."""
    if not launched():
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size())


def env_rank() -> int:
    """This process's rank as torchrun announced it (0 without torchrun), usable before :func:`init`."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def local_rank() -> int:
    """This process's index among those on its machine (its GPU under torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def shard_batch(batch_size: int, world: World) -> int:
    """``train.batch_size`` is the global batch; each rank draws its share (2 at least, for batch norm)."""
    if batch_size % world.size or batch_size // world.size < 2:
        raise ConfigError(f"train.batch_size {batch_size} must divide evenly over {world.size} processes, "
                          f"at least 2 examples each")
    return batch_size // world.size


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around a module that has trainable parameters. Buffers (batch-norm statistics) stay per rank:
    broadcasting them at every forward would rewrite tensors the D step still needs for its backward."""
    if not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    if any(p.dim() == 4 and 1 in p.shape[1:] for p in module.parameters()):
        # Such a weight (one input channel, or a 1x1 kernel) is the same memory in channels_last and contiguous
        # order but not the same strides; R1's double backward returns its gradient with the contiguous ones and
        # DDP warns that they differ from its bucket's, though the bytes are the same (a false alarm)
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters:
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)  # torch < 2.13


def average_grads(params: list[nn.Parameter], world: World) -> None:
    """Average the gradients of parameters no DDP wrapper covers in this phase (one flat all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not world.active or not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def any_flag(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank if it is true on any (so all ranks stop or roll back together)."""
    if not world.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_text(text: str | None, world: World, device: torch.device) -> str:
    """Rank 0's string on every rank (as bytes in a tensor: nothing is pickled)."""
    if not world.active:
        assert text is not None
        return text
    data = torch.tensor(list((text or "").encode()), dtype=torch.uint8, device=device)
    size = torch.tensor([len(data)], device=device)
    dist.broadcast(size, 0)
    buf = data if world.main else torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(buf, 0)
    return bytes(buf.cpu().tolist()).decode()


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def finish(nets: Any = None, ok: bool = True) -> None:
    """Leave the process group. DDP wrappers go first; after a normal end every rank waits for the others (a
    rank still using the group when it is destroyed aborts). After an error, no waiting: this process exits
    with its message and torchrun stops the others, rather than all of them waiting out the group timeout."""
    if nets is not None:
        nets.parallel.clear()
    gc.collect()
    if dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()
