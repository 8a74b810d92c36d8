"""Checkpoints: tensors in safetensors, everything else in JSON. Never pickle, never ``torch.load``.

A checkpoint is a folder ``checkpoints/step-NNNNNNN/`` holding

- ``weights.safetensors``   every network's state dict, keys prefixed by role (``generator.``...);
- ``training.safetensors``  optimizer tensors, RNG states, the fixed sampling latent, the epoch order;
- ``state.json``            step, optimizer hyper-parameters, versions, the names of the above.

It is written into a hidden temporary folder, flushed to disk and renamed into place, so a crash
leaves either the whole new checkpoint or none of it; the last ``keep`` complete ones are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from gancore.averaging import PREFIX
from gancore.errors import CheckpointError
from gancore.fsutil import remove_tree, swap_into_place
from gancore.layers import record_reference_statistics
from gancore.state import TrainState

FORMAT = 1
STEP_DIR = re.compile(r"^step-(\d{7})$")


# -- writing --------------------------------------------------------------------------------------


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> dict[str, Any]:
    sd = opt.state_dict()
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def state_tensors(state: TrainState) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any]]:
    """(weights, training tensors, JSON state) of a run."""
    weights: dict[str, Tensor] = {}
    for role, module in state.nets.named().items():
        record_reference_statistics(module)  # a virtual batch norm's, for the weights saved beside them
        for k, v in module.state_dict().items():
            weights[f"{role}.{k}"] = v.detach().cpu().contiguous()
    if state.average is not None:
        weights.update(state.average.state_tensors())
    train: dict[str, Tensor] = {
        "rng.torch": torch.get_rng_state(),
        "rng.latent": state.latent_gen.get_state(),
        "rng.data": state.data_gen.get_state(),
    }
    if torch.cuda.is_available() and state.device.type == "cuda":
        train["rng.cuda"] = torch.cuda.get_rng_state(state.device)
    for name, v in state.fixed_latent.items():
        train[f"fixed_latent.{name}"] = v.detach().cpu().contiguous()
    if state.perm is not None:
        train["data.perm"] = state.perm.detach().cpu()
    for name, reg in state.regularizers.items():  # stateful regularizers, e.g. historical averaging
        if hasattr(reg, "state_dict") and not isinstance(reg, torch.nn.Module):
            train.update({f"regularizer.{name}.{k}": v.detach().cpu().contiguous()
                          for k, v in reg.state_dict().items()})
    meta = {
        "format": FORMAT,
        "step": state.step,
        "cursor": state.cursor,
        "rollbacks": state.rollbacks,
        "device_type": state.device.type,
        "world_size": state.world.size,  # data-parallel processes that trained it (rank 0 wrote it)
        "optimizers": {
            "generator": _optimizer_tensors("optim.generator", state.opt_g, train),
            "discriminator": _optimizer_tensors("optim.discriminator", state.opt_d, train),
        },
        "torch": torch.__version__,
        "plugins": {n: i.version for n, i in state.manager.info.items()},
    }
    return weights, train, meta


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(state: TrainState, ckpt_root: Path, keep: int) -> Path:
    """Write the checkpoint of ``state.step`` atomically; drop all but the newest ``keep``."""
    weights, train, meta = state_tensors(state)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{state.step:07d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file(weights, str(tmp / "weights.safetensors"), metadata={"format": "gancore-weights"})
        save_file(train, str(tmp / "training.safetensors"), metadata={"format": "gancore-training"})
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        swap_into_place(tmp, final)  # the same step written again (a rollback) replaces it as a whole
        _fsync_dir(ckpt_root)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        kept = ("the previous checkpoint is intact" if list_checkpoints(ckpt_root) else
                "no checkpoint was written before it, so there is nothing to resume")
        raise CheckpointError(f"could not write checkpoint {final}: {reason}; {kept}. Free disk space or choose a "
                              f"writable --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_root)[:-keep]:
        remove_tree(old)
    return final


# -- reading --------------------------------------------------------------------------------------


def recover(ckpt_root: Path) -> None:
    """Tidy up after a crash: drop half-written ``.tmp-*`` folders; put back a ``.old-*`` checkpoint whose
    replacement never landed (a crash between the two renames of a rewrite)."""
    if not ckpt_root.is_dir():
        return
    for p in ckpt_root.iterdir():
        if p.name.startswith(".tmp-"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".old-"):
            name = p.name[5:].rsplit("-", 1)[0]
            if STEP_DIR.match(name) and not (ckpt_root / name).exists():
                os.rename(p, ckpt_root / name)
            else:
                shutil.rmtree(p, ignore_errors=True)


def checkpoint_step(ckpt: Path) -> int:
    """The step a checkpoint folder ``step-NNNNNNN`` holds."""
    return int(ckpt.name[len("step-"):])


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Temporary folders of an interrupted write never count."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=checkpoint_step)


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; the checkpoint is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint file {path} is corrupt or not a safetensors file ({e}); "
                              f"use an earlier one with --checkpoint N (gan train --resume, sample, eval and export "
                              f"take it)") from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {path} is corrupt (not JSON: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} {path} is corrupt (not a JSON object)")
    return data


def load_weights(state: TrainState, ckpt: Path, *, averaged: bool = False) -> None:
    """Load the networks' weights from checkpoint folder ``ckpt``, and the averaged copies of a run that
    trains with ``train.ema``. With ``averaged``, the networks get the averaged weights where the checkpoint
    has them (sampling, evaluation and export of such a run), the live ones elsewhere."""
    weights = _load_safetensors(ckpt / "weights.safetensors")
    targets = [(role, role, module) for role, module in state.nets.named().items()]
    if state.average is not None:
        targets += [(f"{PREFIX}{role}", f"averaged {role}", m) for role, m in state.average.copies.items()]
    for key, what, module in targets:
        if averaged and any(k.startswith(f"{PREFIX}{key}.") for k in weights):
            key = f"{PREFIX}{key}"
        prefix = f"{key}."
        sd = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        if not sd and key.startswith(PREFIX):
            raise CheckpointError(f"checkpoint {ckpt} has no averaged weights for {key[len(PREFIX):]}, but the run "
                                  f"trains with train.ema; it was not written by this run")
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {ckpt} does not fit this run's {what}: {_mismatch(e)}; was it "
                                  f"written by another run or config?") from None


def _mismatch(e: RuntimeError, limit: int = 300) -> str:
    """The first of torch's reasons (missing keys, unexpected keys, a size mismatch), not its header line."""
    lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
    reason = lines[0] if lines else str(e).strip()
    return reason if len(reason) <= limit else reason[:limit] + " ..."


def _load_optimizer(opt: torch.optim.Optimizer, prefix: str, meta: dict[str, Any], tensors: dict[str, Tensor],
                    device: torch.device) -> None:
    state: dict[int, dict[str, Any]] = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, v in tensors.items():
        if key.startswith(prefix + ".state."):
            idx, name = key[len(prefix) + 7:].split(".", 1)
            p = params[int(idx)] if int(idx) < len(params) else None
            if p is not None and v.shape == p.shape:
                # Same strides as the parameter (channels_last): fused optimizers walk memory, not indices.
                v = torch.empty_like(p).copy_(v)
            elif name != "step":  # Adam keeps "step" on the CPU unless capturable
                v = v.to(device)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def load_checkpoint(state: TrainState, ckpt: Path) -> None:
    """Restore weights, optimizers, RNG states, the epoch order and the step count."""
    meta = read_json(ckpt / "state.json", "checkpoint state")
    if meta.get("format") != FORMAT or not isinstance(meta.get("step"), int):
        raise CheckpointError(f"checkpoint {ckpt} has an unknown format; it was not written by this gancore")
    load_weights(state, ckpt)
    train = _load_safetensors(ckpt / "training.safetensors")
    try:
        _load_optimizer(state.opt_g, "optim.generator", meta["optimizers"]["generator"], train, state.device)
        _load_optimizer(state.opt_d, "optim.discriminator", meta["optimizers"]["discriminator"], train,
                        state.device)
        torch.set_rng_state(train["rng.torch"])
        # Several processes cannot all continue rank 0's streams, and its epoch order indexed its shard; a CPU
        # generator's state does not fit a CUDA one. Either way each process reseeds from (seed, step, rank).
        same_world = int(meta.get("world_size", 1)) == state.world.size and not state.world.active
        same_device = meta.get("device_type", state.device.type) == state.device.type
        if same_world and same_device:
            state.latent_gen.set_state(train["rng.latent"])
            state.data_gen.set_state(train["rng.data"])
            if "rng.cuda" in train and state.device.type == "cuda":
                torch.cuda.set_rng_state(train["rng.cuda"], state.device)
        else:
            if not same_device:
                print(f"gancore: warning: checkpoint {ckpt.name} was written on {meta['device_type']}, resuming "
                      f"on {state.device.type}: the run continues but not bit-for-bit", file=sys.stderr)
            state.step = meta["step"]
            state.reseed()
        state.fixed_latent = {k.split(".", 1)[1]: v.to(state.device) for k, v in train.items()
                              if k.startswith("fixed_latent.")}
        state.perm = train["data.perm"].to(state.device) if "data.perm" in train and same_world else None
        if state.perm is not None and state.data is not None and len(state.perm) != len(state.data):
            # files added or removed since: the saved order would index examples that are not there
            print(f"gancore: warning: the training data now holds {len(state.data)} examples, {len(state.perm)} "
                  f"when {ckpt.name} was written; the run continues with a fresh pass over the data as it is now, "
                  f"not bit-for-bit", file=sys.stderr)
            state.perm = None
        state.cursor = int(meta.get("cursor", 0)) if state.perm is not None else 0
        state.rollbacks = int(meta.get("rollbacks", 0))
        for name, reg in state.regularizers.items():
            if hasattr(reg, "load_state_dict") and not isinstance(reg, torch.nn.Module):
                prefix = f"regularizer.{name}."
                reg.load_state_dict({k[len(prefix):]: v for k, v in train.items() if k.startswith(prefix)},
                                    state.device)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"checkpoint {ckpt} is inconsistent ({type(e).__name__}: {e})") from None
    state.step = meta["step"]
    if state.average is not None:
        state.average.loaded(state.step)
