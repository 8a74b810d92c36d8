"""Run configuration: typed sections, ``--set key=value`` overrides and TOML files.

A run config is a plain nested dict (it is saved as JSON in the run folder):

    plugin, seed, device
    train          core training options (TrainConfig)
    data           {name: dataset, + core data options (DataConfig) + the dataset's own options}
    generator      {name: component, + its options}
    discriminator  {name: ..., ...}
    sampler        {name: ..., ...}
    loss           {name: ..., ...}
    regularizers   {component name: {its options}}   (zero or more, each switched on by presence)
    networks       {role: {name: ..., group: "generator"|"discriminator", ...}}   (extra networks)

Component options are checked against the component's keyword-only config dataclass, so a wrong
key or type is caught before any work starts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import operator
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gancore.errors import ConfigError, suggest


@dataclass(kw_only=True)
class TrainConfig:
    """Core training options (section ``train``)."""

    steps: int = 2000
    batch_size: int = 64
    d_steps: int = 1  # k discriminator steps per generator step (Goodfellow et al. 2014, Alg. 1)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5  # Radford et al. 2015: 0.9 oscillates, 0.5 stabilises
    beta2: float = 0.999
    # Anneal both learning rates to 0 by the last step, after holding them for the first lr_decay_start of
    # the steps (pix2pix / CycleGAN hold half, then decay linearly): late steps stop jittering G's samples.
    lr_decay: Literal["none", "linear", "cosine"] = "none"
    lr_decay_start: float = 0.0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_count: int = 64
    channels_last: bool = True  # NHWC image tensors: faster (transposed) convolutions in oneDNN and cuDNN
    eval_every: int = 0  # >0: run the fitting metrics every N steps (logged in metrics.jsonl as "eval")
    on_nan: Literal["stop", "rollback"] = "stop"  # rollback: reload the last good checkpoint, lower the LR
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    compile: bool = False  # torch.compile every network: opt-in, compiling costs time up front
    autocast: Literal["off", "bf16"] = "off"  # bf16 mixed precision for forward passes (weights, Adam stay fp32)
    # >0: sample, evaluate and export an exponential moving average of G's weights (gancore.averaging), e.g.
    # 0.999; ema_start: the average follows the live weights until this step, then starts averaging;
    # ema_nets: the networks averaged, by role (e.g. ["generator", "discriminator"] for an averaged classifier).
    ema: float = 0.0
    ema_start: int = 0
    ema_nets: list[str] = field(default_factory=lambda: ["generator"])

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "d_steps", "log_every", "sample_every", "checkpoint_every",
                     "keep_checkpoints", "sample_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be in (0, 1), got {getattr(self, name)}")
        if not 0 < self.rollback_lr_factor < 1:
            raise ValueError(f"train.rollback_lr_factor must be in (0, 1), got {self.rollback_lr_factor}")
        if not 0 <= self.lr_decay_start < 1:
            raise ValueError(f"train.lr_decay_start must be in [0, 1) (a fraction of train.steps), "
                             f"got {self.lr_decay_start}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"train.ema must be in [0, 1) (0 turns weight averaging off), got {self.ema}")
        if self.ema_start < 0:
            raise ValueError(f"train.ema_start must be >= 0, got {self.ema_start}")
        if not self.ema_nets or len(set(self.ema_nets)) != len(self.ema_nets):
            raise ValueError(f"train.ema_nets must name one or more networks, each once, got {self.ema_nets}")
        if self.eval_every < 0:
            raise ValueError(f"train.eval_every must be >= 0, got {self.eval_every}")
        if self.max_rollbacks < 0:
            raise ValueError(f"train.max_rollbacks must be >= 0, got {self.max_rollbacks}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(kw_only=True)
class DataConfig:
    """Core data options (section ``data``, beside the dataset's own options)."""

    name: str = "fashion-mnist"
    dir: str = ""  # a torchvision root or a folder holding the dataset's files; "" searches defaults
    limit: int = 0  # keep only N training examples (0: all): the first N, or a dataset's own even spread
    labels_per_class: int = 0  # >0: a balanced labelled subset for semi-supervised training

    def __post_init__(self) -> None:
        if self.limit < 0 or self.labels_per_class < 0:
            raise ValueError("data.limit and data.labels_per_class must be >= 0")


TOP_SCALARS: dict[str, type] = {"plugin": str, "seed": int, "device": str}
COMPONENT_SECTIONS = ("generator", "discriminator", "sampler", "loss")
SECTIONS = ("train", "data", *COMPONENT_SECTIONS, "regularizers", "networks")
MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take it, with room for the per-step offsets


def check_roles(roles: list[str], present: list[str]) -> None:
    """Refuse ``train.ema_nets`` entries that name none of the run's networks (``present``, by role)."""
    for role in roles:
        if role not in present:
            raise ConfigError(f"train.ema_nets: this run has no network {role!r}; its networks are "
                              f"{', '.join(present)}")


def check_seed(seed: int, where: str = "seed") -> int:
    """``seed`` if it is a whole number from 0 to :data:`MAX_SEED`, else a :class:`ConfigError` saying so."""
    if (n := whole(seed)) is None or not 0 <= n <= MAX_SEED:
        raise ConfigError(f"{where} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return n


def whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number type (int, numpy's integers), not a bool; else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def default_config() -> dict[str, Any]:
    return {
        "plugin": "",
        "seed": 0,
        "device": "auto",
        "train": dataclasses.asdict(TrainConfig()),
        "data": dataclasses.asdict(DataConfig()),
        "generator": {},
        "discriminator": {},
        "sampler": {"name": "normal"},  # z ~ N(0, I), 100 dimensions: what a recipe gets unless it says otherwise
        "loss": {"name": "nonsaturating"},
        "regularizers": {},
        "networks": {},
    }


def merge(base: dict[str, Any], over: Mapping[str, Any],
          replaced: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``. A new component ``name`` drops the old options; each section
    so replaced is appended to ``replaced``, when given, as (section, its old contents)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            if "name" in value and value["name"] != out[key].get("name") and key in COMPONENT_SECTIONS:
                if replaced is not None:
                    replaced.append((key, out[key]))
                out[key] = {}
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_DECIMAL = re.compile(r"[+-]?(\d*\.\d+|\d+\.)([eE][+-]?\d+)?")  # .9 or 1.: TOML wants 0.9 and 1.0


class NotToml(str):
    """A ``--set`` value that looks like a TOML list, table, string or number but does not parse: kept as the bare
    string it may well be (a folder named ``[old] faces``), while an option that wants a list, table or number
    refuses it with ``why``, rather than with a type error that hides the slip."""

    why: str

    def __new__(cls, text: str, why: str = "") -> NotToml:  # why defaults for copy.deepcopy, which restores it
        obj = super().__new__(cls, text)
        obj.why = why
        return obj


def parse_value(text: str, key: str = "value") -> Any:
    """A ``--set`` value: a TOML literal (1, 0.5, true, "x", [1, 2]) or else the bare string (a :class:`NotToml`
    where it looks like a TOML value that did not parse)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        if text[:1] in "[{\"'" and text:
            why = str(e).split(" (at ", 1)[0]  # its position counts a prefix the user never typed
            hint = {"[": f"quote the strings in it and close it, e.g. --set '{key}=[\"generator\"]'",
                    "{": "check each value: strings in quotes, numbers with digits on both sides of the point"
                    }.get(text[0], "close the quote")
            return NotToml(text, f"--set {key}={text} is not a valid TOML value ({why}); {hint}")
        if _DECIMAL.fullmatch(text):
            fixed = re.sub(r"\.(?!\d)", ".0", re.sub(r"(?<!\d)\.", "0.", text))
            return NotToml(text, f"--set {key}={text}: write the number with digits on both sides of the point, "
                                 f"e.g. {fixed}")
        return text


def _wrong(where: str, what: str, value: Any) -> ConfigError:
    """A type error; a ``--set`` slip (:class:`NotToml`) says what the slip was instead."""
    return ConfigError(value.why if isinstance(value, NotToml) else f"{where} expects {what}, got {value!r}")


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["generator.width=64", "seed=3"]`` -> nested dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r} (for example --set generator.width=64)")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = parse_value(value.strip(), key)
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() or p.is_dir():  # a pipe (--config <(...), /dev/stdin) is not a regular file, and is fine
        what = "is a folder, not a TOML file" if p.is_dir() else "does not exist"
        raise ConfigError(f"config file {str(p)!r} {what}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type ``tp``; ints are accepted for floats and lists for tuples."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, arm, where)
            except ConfigError:
                continue
        raise _wrong(where, _type_name(tp), value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"{where} must be one of {choices}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _wrong(where, "a list", value)
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _wrong(where, "a table", value)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _wrong(where, "true or false", value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's floats and ints are Real
            raise _wrong(where, "a number", value)
        value = float(str(value)) if type(value).__module__ == "numpy" else float(value)  # np.float32(1e-4): 1e-4
        if not math.isfinite(value):  # a range check written `x < 0` lets NaN through, and the run dies at step 1
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return value
    if tp is int:
        if (n := whole(value)) is None:  # numpy's integers too, saved as plain ints
            if isinstance(value, NotToml) and _DECIMAL.fullmatch(value):  # not "write it as 0.5" for a count
                raise ConfigError(f"{where} expects a whole number, got {value!s}")
            raise _wrong(where, "an integer", value)
        return n
    if tp is str:
        if not isinstance(value, str):  # e.g. a folder named 2024, which TOML reads as a number
            raise ConfigError(f"{where} expects a string, got {value!r}; to give {value} as text, quote it "
                              f"(--set 'KEY=\"{value}\"')")
        return str(value)  # a NotToml is the plain text the user typed
    if not isinstance(value, tp):
        raise ConfigError(f"{where} expects {_type_name(tp)}, got {value!r}")
    return value


def coerce_params(cfg_type: type, params: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Check ``params`` against dataclass ``cfg_type``: unknown keys, types, and its own range checks."""
    hints = typing.get_type_hints(cfg_type)
    fields = {f.name: f for f in dataclasses.fields(cfg_type) if f.init}
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"unknown key {key!r} for {where}.{suggest(key, fields)} Valid keys: {valid}")
        out[key] = coerce(value, hints[key], f"{where}: {key}")
    missing = [
        n for n, f in fields.items()
        if n not in out and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    try:
        cfg_type(**out)  # runs the dataclass's own range checks
    except (ValueError, TypeError) as e:
        msg = str(e)  # a check that already names its key in full ("train.steps must ...") is not prefixed again
        raise ConfigError(msg if msg.startswith(f"{where}.") else f"{where}: {msg}") from None
    return out


