"""Everything a run holds in memory: config, data on the device, networks, optimizers, RNGs, step."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancore import distributed
from gancore.averaging import WeightAverage, check_averageable
from gancore.components import Batch, DOut, LatentSpec, Loss, Nets, Regularizer, Sampler, TensorData
from gancore.distributed import SINGLE, World
from gancore.errors import ConfigError, DataError, GanError, PluginError, innermost, where
from gancore.fsutil import json_text
from gancore.plugins import PluginManager
from gancore.resolve import component_owners, split_name


def pick_device(name: str) -> torch.device:
    if distributed.launched() and name in ("auto", "cuda") and torch.cuda.is_available():
        rank, gpus = distributed.local_rank(), torch.cuda.device_count()
        if rank >= gpus:
            raise ConfigError(f"process {rank} on this machine needs its own GPU, but there are {gpus}; "
                              f"use --nproc {gpus} or fewer")
        torch.cuda.set_device(rank)  # one GPU per process on a node; NCCL collectives use it
        return torch.device(f"cuda:{rank}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return dev


@dataclass
class TrainState:
    """A run's live state. ``step`` counts finished generator steps."""

    config: dict[str, Any]
    manager: PluginManager
    device: torch.device
    data_info: dict[str, Any]
    sampler: Sampler
    nets: Nets
    loss: Loss
    regularizers: dict[str, Regularizer]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    latent_gen: torch.Generator
    data_gen: torch.Generator
    fixed_latent: dict[str, Tensor]
    data: TensorData | None = None
    run_dir: Path | None = None
    step: int = 0
    perm: Tensor | None = None  # this epoch's order of the training examples
    cursor: int = 0
    labelled: tuple[Tensor, Tensor] | None = None  # the labelled subset (x, y), whole on every process
    rollbacks: int = 0  # NaN rollbacks so far (saved, so --max-rollbacks and the LR factor survive a resume)
    world: World = SINGLE  # this process's place among data-parallel processes
    average: WeightAverage | None = None  # train.ema: the averaged networks
    progress: bool = True  # this process shows progress (not under --quiet, nor on ranks > 0); hooks honour it
    stop_signal: int | None = None  # set by gancore.signals.stop_on_signals: checkpoint this step, then stop

    @property
    def latent_specs(self) -> tuple[LatentSpec, ...]:
        return tuple(self.sampler.specs)

    def generate(self, n: int, seed: int = 0) -> Tensor:
        """``n`` samples from the generator in eval mode (see :func:`gancore.sampling.generate`)."""
        from gancore.sampling import generate

        return generate(self, n, seed)

    def components(self) -> list[Any]:
        return [self.sampler, self.loss, *self.regularizers.values(), *self.nets.named().values()]

    def plugin_components(self) -> dict[str, Any]:
        """The components plugins other than the core built, each under words naming it and its plugin
        (``loss 'mine' of plugin 'gan-foo'``): whom an error raised inside one of them is put down to."""
        objects = {"generator": self.nets.generator, "discriminator": self.nets.discriminator, "loss": self.loss,
                   "sampler": self.sampler, **{f"networks.{r}": m for r, m in self.nets.extra.items()},
                   **{f"regularizers.{n}": r for n, r in self.regularizers.items()}}
        return {f"{'regularizer' if role.startswith('regularizers.') else role} {o['name']!r} of plugin "
                f"{o['plugin']!r}": objects[role]
                for role, o in component_owners(self.manager, self.config).items()
                if role in objects and o["plugin"] != "gancore"}

    # -- data ------------------------------------------------------------------------------------
    def next_batch(self, n: int) -> Batch:
        """The next ``n`` examples of a shuffled epoch; all indexing stays on the device."""
        assert self.data is not None
        size = len(self.data)
        if self.perm is None or self.cursor + n > size:
            self.perm = torch.randperm(size, generator=self.data_gen, device=self.device)
            self.cursor = 0
        idx = self.perm[self.cursor:self.cursor + n]
        self.cursor += n
        y = self.data.y[idx] if self.data.y is not None else None
        batch = Batch(x=self.data.x[idx], y=y)
        if self.labelled is not None:
            lx, ly = self.labelled
            li = torch.randint(0, len(lx), (n,), generator=self.data_gen, device=self.device)
            batch.x_labelled, batch.y_labelled = lx[li], ly[li]
        return batch

    def reseed(self) -> None:
        """Latent and data RNG streams derived from the seed, the step and the rank: a new run's, and those of
        a process that cannot continue a saved stream (another device type, or several processes)."""
        base = self.config["seed"] + 1000 * self.step + 7919 * self.world.rank
        self.latent_gen.manual_seed(base + 1)
        self.data_gen.manual_seed(base + 2)
        if self.world.active:  # the global stream (dropout, D's noise, random shifts): each process its own, not
            torch.manual_seed(base + 3)  # the copy that drew the shared initial weights


def load_data(mgr: PluginManager, cfg: dict[str, Any], *, train: bool = True) -> TensorData:
    name, opts = split_name(cfg["data"])
    core = {k: opts.pop(k) for k in ("dir", "limit", "labels_per_class")}
    extra: dict[str, Any] = {}
    if train and core["limit"] and "limit" in inspect.signature(mgr.registries.datasets.get(name).builder).parameters:
        extra["limit"] = core["limit"]  # a builder that can read only N examples (image-folder) need not read all
    data = mgr.registries.datasets.build(name, opts, where="data", root=core["dir"], train=train, **extra)
    if train and core["limit"]:
        data.x = data.x[: core["limit"]]
        data.y = data.y[: core["limit"]] if data.y is not None else None
    return data


# What a run's networks and figures mean in terms of its data: class i is classes[i], token i is vocab[i]
SAME_DATA = ("kind", "shape", "value_range", "classes", "vocab", "level")


def _difference(key: str, was: Any, now: Any) -> str:
    if key in ("classes", "vocab") and isinstance(was, list) and isinstance(now, list):
        gone, new = [t for t in was if t not in now], [t for t in now if t not in was]
        what = "its classes" if key == "classes" else "its vocabulary"
        if gone or new:
            return (f"{what} changed ({len(was)} then, {len(now)} now; gone: {', '.join(map(repr, gone[:5])) or '-'}; "
                    f"new: {', '.join(map(repr, new[:5])) or '-'})")
        return f"{what} are the same names in another order, so every id would change meaning"
    return f"its {key.replace('_', ' ')} is {now!r}, {was!r} then"


def data_place(cfg: Mapping[str, Any]) -> str:
    """The data a config reads, in words: ``image-folder in ~/faces``, ``text from my.txt``, ``fashion-mnist``."""
    data = cfg["data"]
    place = str(data["name"])
    if data.get("dir"):
        place += f" in {data['dir']}"
    if data.get("path"):
        place += f" from {data['path']}"
    return place


def check_same_data(recorded: Mapping[str, Any], now: Mapping[str, Any], what: str, fix: str) -> None:
    """Refuse data that no longer matches what a run was built for (``recorded``, its run.json): another class
    order or vocabulary would silently give every label or token id another meaning."""
    now = json.loads(json_text(dict(now)))  # as run.json holds it: tuples as lists
    diffs = [_difference(k, recorded.get(k), now.get(k)) for k in SAME_DATA if k in recorded and
             recorded.get(k) != now.get(k)]
    if diffs:
        raise DataError(f"{what} no longer matches the data the run was trained on: {'; '.join(diffs)}. {fix}")


def _examples(n: int) -> str:
    return f"{n} example{'' if n == 1 else 's'}"


def balanced_labels(y: Tensor, per_class: int, seed: int, classes: list[str] | None = None) -> Tensor:
    """Indices of ``per_class`` examples of every class, drawn with ``seed``; ``classes`` names them in errors."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < per_class:
            name = f"class {classes[c]!r}" if classes and c < len(classes) else f"class {c}"
            raise DataError(f"{name} has only {_examples(len(idx))}, fewer than data.labels_per_class={per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


def dry_run(cfg: dict[str, Any], nets: Nets, sampler: Sampler, data_info: dict[str, Any],
            device: torch.device, real: Tensor | None = None, plugins: Mapping[str, str] | None = None) -> None:
    """One forward pass of G and D on a latent draw, in eval mode and on a private RNG, then of D on ``real``
    examples if given (a batch as training feeds them), so a component that does not fit the data fails now,
    naming both shapes, rather than deep inside the first step (with a run folder already made). Eval mode
    and no_grad: no batch-norm statistics move and no RNG is drawn, so training is the same bit for bit.
    ``plugins``: the plugin of each role's component, named in the errors (a third party's, most likely)."""
    g, d = nets.generator, nets.discriminator
    gen, disc = (f"{role} {cfg[role]['name']!r}" + (f" of plugin {plugins[role]!r}" if plugins else "")
                 for role in ("generator", "discriminator"))
    modes = (g.training, d.training)
    g.eval()
    d.eval()
    try:
        n = cfg["train"]["batch_size"]  # the real batch, so packing and batch-size constraints show up now
        with torch.no_grad():
            latent = sampler.sample(n, torch.Generator(device=device).manual_seed(0), device)
            x = g(**latent)
            want = (n, *data_info["shape"])
            if data_info.get("kind") in ("image", "points") and (not isinstance(x, Tensor) or tuple(x.shape) != want):
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise GanError(f"{gen} returned {got}, expected {want} "
                               f"(batch, *example shape of dataset {cfg['data']['name']!r})")
            out = d(x, **latent) if getattr(d, "joint_latent", False) else d(x)  # BiGAN's D reads (x, z)
            if not isinstance(out, DOut):
                raise GanError(f"{disc} returned {type(out).__name__}, "
                               f"expected gancore.components.DOut")
            if out.logits.ndim not in (1, 2) or n % out.logits.shape[0]:
                raise GanError(f"{disc} returned logits of shape "
                               f"{tuple(out.logits.shape)}, expected ({n},) or ({n}, classes) (or packs of {n})")
            if real is not None:
                _read_real(cfg, d, real.to(device), latent, data_info)
    except GanError:
        raise
    except Exception as e:  # a shape mismatch inside the networks themselves, or a bug in one
        who = innermost(e, {gen: g, disc: d})
        raised = f"{who} raised{where(e)} " if who else ""
        raise GanError(f"the networks do not fit together or the data ({raised}{type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}); check the generator, discriminator and data.image_size"
                       ) from None
    finally:
        g.train(modes[0])
        d.train(modes[1])


def _read_real(cfg: dict[str, Any], d: torch.nn.Module, real: Tensor, latent: dict[str, Tensor],
               data_info: dict[str, Any]) -> None:
    """D on real examples: a D that reads G's output may still not read the data (token ids into a float net)."""
    try:
        d(real, **latent) if getattr(d, "joint_latent", False) else d(real)
    except Exception as e:
        what = f"{data_info.get('kind', 'image')}s of shape {tuple(real.shape[1:])}, {real.dtype}"
        raise GanError(f"discriminator {cfg['discriminator']['name']!r} cannot read the examples of dataset "
                       f"{cfg['data']['name']!r} ({what}): {type(e).__name__}: {str(e).splitlines()[0][:200]}; "
                       f"pick a discriminator made for this data (gan plugins --options lists them)") from None


def build_state(mgr: PluginManager, cfg: dict[str, Any], *, data: TensorData | None = None,
                data_info: dict[str, Any] | None = None, device: torch.device | None = None) -> TrainState:
    """Build networks, optimizers and RNGs for ``cfg``. Pass ``data`` to train, or ``data_info`` to sample."""
    regs = mgr.registries
    device = device or pick_device(cfg["device"])
    world = distributed.init(device)
    torch.manual_seed(cfg["seed"])  # initial weights: the same on every process
    if data is not None:
        data_info = data.describe()
        if cfg["train"]["batch_size"] > len(data):
            raise ConfigError(f"train.batch_size {cfg['train']['batch_size']} is larger than the dataset "
                              f"({_examples(len(data))}{', data.limit' if cfg['data']['limit'] else ''}); lower it")
    assert data_info is not None

    name, opts = split_name(cfg["sampler"])
    wants_data = "data" in inspect.signature(regs.samplers.get(name).builder).parameters
    sampler = regs.samplers.build(name, opts, where="sampler", **({"data": data_info} if wants_data else {}))
    latent = tuple(sampler.specs)
    ctx = {"latent": latent, "data": data_info}
    g = regs.generators.build(*split_name(cfg["generator"]), where="generator", **ctx)
    d = regs.discriminators.build(*split_name(cfg["discriminator"]), where="discriminator", **ctx)
    extra, groups = {}, {}
    for role, params in cfg["networks"].items():
        params = dict(params)
        groups[role] = params.pop("group")
        extra[role] = regs.networks.build(*split_name(params), where=f"networks.{role}", **ctx)
    nets = Nets(generator=g.to(device), discriminator=d.to(device),
                extra={k: v.to(device) for k, v in extra.items()}, groups=groups)
    loss = regs.losses.build(*split_name(cfg["loss"]), where="loss")
    regularizers = {name: regs.regularizers.build(*split_name(p), where=f"regularizers.{name}")
                    for name, p in cfg["regularizers"].items()}
    for name, reg in regularizers.items():
        if (why := reg.check(nets, data_info)) is not None:
            raise ConfigError(f"regularizers.{name}: {why}")

    t = cfg["train"]
    if t["ema"]:
        check_averageable(nets, t["ema_nets"], data_info)
    owners = {role: o["plugin"] for role, o in component_owners(mgr, cfg).items()}
    for group in ("generator", "discriminator"):  # else torch's "optimizer got an empty parameter list"
        if not any(p.requires_grad for p in nets.parameters_of(group)):
            raise PluginError(f"{group} {cfg[group]['name']!r} of plugin {owners[group]!r} has no weights to "
                              f"train (no nn.Parameter that requires grad); make its layers attributes of the "
                              f"module, e.g. self.net = nn.Sequential(...)")
    # fused: one kernel for the whole update instead of several per tensor (CPU and CUDA alike).
    opt_g = torch.optim.Adam(nets.parameters_of("generator"), lr=t["lr_g"], betas=(t["beta1"], t["beta2"]),
                             fused=True)
    opt_d = torch.optim.Adam(nets.parameters_of("discriminator"), lr=t["lr_d"],
                             betas=(t["beta1"], t["beta2"]), fused=True)

    latent_gen, data_gen = torch.Generator(device=device), torch.Generator(device=device)  # seeded below
    fixed_gen = torch.Generator(device=device).manual_seed(cfg["seed"] + 3)
    fixed = sampler.sample(t["sample_count"], fixed_gen, device)

    dry_run(cfg, nets, sampler, data_info, device, real=None if data is None else data.x[:t["batch_size"]],
            plugins=owners)
    state = TrainState(config=cfg, manager=mgr, device=device, data_info=data_info, sampler=sampler, nets=nets,
                       loss=loss, regularizers=regularizers, opt_g=opt_g, opt_d=opt_d, latent_gen=latent_gen,
                       data_gen=data_gen, fixed_latent=fixed, world=world)
    state.reseed()
    if cfg["train"]["channels_last"] and data_info.get("kind") == "image":
        for m in nets.named().values():
            m.to(memory_format=torch.channels_last)
    if t["ema"] and data is not None:  # before compiling: the copy runs eagerly, outside training
        named = nets.named()
        state.average = WeightAverage({role: named[role] for role in t["ema_nets"]}, t["ema"],
                                      sampler=sampler, batch_size=t["batch_size"], start=t["ema_start"],
                                      seed=cfg["seed"])
    if cfg["train"]["compile"] and data is not None:
        for m in nets.named().values():
            m.compile()  # in place: state_dict keys, attributes and hooks stay those of the module
    if data is not None:
        per_class = cfg["data"]["labels_per_class"]
        if per_class:  # drawn from the whole set, the same on every process
            if data.y is None:
                raise DataError(f"data.labels_per_class={per_class} needs a labelled dataset")
            try:
                idx = balanced_labels(data.y, per_class, cfg["seed"], data.classes)
            except DataError as e:
                if not cfg["data"]["limit"]:
                    raise DataError(f"{e}; lower it") from None
                raise DataError(f"{e}, among the {len(data.y)} examples data.limit keeps; raise data.limit or "
                                f"lower labels_per_class") from None
            state.labelled = (to_device(data.x[idx], device, cfg), data.y[idx].to(device))
        distributed.shard_batch(cfg["train"]["batch_size"], world)  # refused here, before a run folder exists
        if world.active:  # each process trains on its own slice of the examples
            data.x, data.y = data.x[world.rank::world.size], (data.y[world.rank::world.size]
                                                               if data.y is not None else None)
        data.x = to_device(data.x, device, cfg)
        data.y = data.y.to(device) if data.y is not None else None
        state.data = data
        if state.average is not None:
            state.average.real = data.x
        if world.active:
            nets.parallel = {role: distributed.wrap(m, device) for role, m in nets.named().items()}
    return state


def to_device(x: Tensor, device: torch.device, cfg: dict[str, Any]) -> Tensor:
    """Examples on the run's device, in channels_last when the run trains images that way."""
    x = x.to(device)
    if cfg["train"]["channels_last"] and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
