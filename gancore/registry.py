"""Registries of named components. Plugins fill them through the ``gan_register_*`` hooks.

A registry refuses a second component under a name already taken, naming both plugins, lists
its names, and builds a component from a typed keyword-only config dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gancore.config import coerce_params
from gancore.errors import ConfigError, PluginError, UnknownNameError, blame, suggest

# A name is typed after --plugin and --set KEY.name=, and a recipe's names the run folder (runs/<name>-0001)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    name: str
    builder: Callable[..., Any]
    config: type | None
    plugin: str
    description: str

    def defaults(self) -> dict[str, Any]:
        """The config fields and their defaults (``None`` marks a required field)."""
        if self.config is None:
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self.config):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = None
        return out


class Registry:
    """Named components of one kind (generators, losses, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.one = kind[:-2] if kind.endswith("sses") else kind[:-1]  # "losses" -> "loss", "metrics" -> "metric"
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        builder: Callable[..., Any],
        *,
        config: type | None = None,
        plugin: str = "?",
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.one} with an empty or non-string name")
        if not NAME.fullmatch(name):
            raise PluginError(f"plugin {plugin!r} registered a {self.one} named {name!r}; a name is letters, digits "
                              f"and . _ + - (starting with a letter or digit), as it is typed on the command line "
                              f"and names run folders")
        if not callable(builder):
            raise PluginError(f"plugin {plugin!r} registered {self.one} {name!r} with a {type(builder).__name__} "
                              f"as its builder; register a function (or class) that builds it")
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.one} {name!r} is registered twice: by plugin {other!r} and by plugin {plugin!r}; "
                f"uninstall one of them or restrict loading with GANCORE_PLUGINS"
            )
        if config is not None and not dataclasses.is_dataclass(config):
            raise PluginError(f"plugin {plugin!r}: config for {self.one} {name!r} must be a dataclass")
        if not description and builder.__doc__:
            description = " ".join(re.split(r"\n\s*\n", builder.__doc__.strip())[0].split())  # its first paragraph
        self._entries[name] = Entry(name, builder, config, plugin, description)

    def drop_plugin(self, plugin: str) -> None:
        """Forget every component ``plugin`` registered (it failed to load whole)."""
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}

    def list(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.list()]

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.list()) or "none"
            raise UnknownNameError(
                f"unknown {self.one} {name!r}.{suggest(name, self._entries)} Known {self.kind}: {known}"
            ) from None

    def options(self, name: str, params: Mapping[str, Any] | None = None, *, where: str = "") -> dict[str, Any]:
        """``params`` checked against component ``name``'s config: keys, types and its own range checks."""
        entry = self.get(name)
        where = f"{where or self.one} {name!r}"
        params = dict(params or {})
        if entry.config is None:
            if params:
                raise ConfigError(f"{where} takes no options, got {', '.join(sorted(params))}")
            return {}
        return coerce_params(entry.config, params, where=where)

    def build(self, name: str, params: Mapping[str, Any] | None = None, *, where: str = "", **extra: Any) -> Any:
        """Build component ``name`` from ``params`` (checked against its config) plus ``extra`` keywords."""
        entry = self.get(name)
        opts = self.options(name, params, where=where)
        args = () if entry.config is None else (entry.config(**opts),)
        _check_call(entry, self.one, args, extra)
        where = f"{where or self.one} {name!r}"
        with blame(f"{where} of plugin {entry.plugin!r} failed to build"):  # else it reads as gancore's bug
            try:
                built = entry.builder(*args, **extra)
            except ValueError as e:  # a builder's own check of its inputs, e.g. an image size it cannot make
                raise ConfigError(f"{where}: {e}") from None
        if (expected := _expected(self.kind)) and isinstance(built, type):  # its methods would lack their self
            raise PluginError(f"{where} of plugin {entry.plugin!r}: its builder returned the class "
                              f"{built.__name__}, not an instance of it ({built.__name__}(...)); expected "
                              f"{expected[1]}")
        if expected and not expected[0](built):
            raise PluginError(f"{where} of plugin {entry.plugin!r}: its builder returned an object of type "
                              f"{type(built).__name__}, expected {expected[1]}; see the hook's docstring in "
                              f"gancore/hookspecs.py")
        return built


# What a builder of each duck-typed kind returns: its description, the methods and the attributes it must have
_CONTRACTS = {"losses": ("a gancore.components.Loss", ("discriminator_loss", "generator_loss"), ()),
              "samplers": ("a gancore.components.Sampler", ("sample",), ("specs",)),
              "regularizers": ("a gancore.components.Regularizer", ("__call__", "check"), ("phases",))}


def _expected(kind: str) -> tuple[Callable[[Any], bool], str] | None:
    """What a builder of ``kind`` must return: a test and its description (imported here, as torch is heavy and
    ``import gancore`` does not load it). Metrics are checked where they are built (a bare callable is one)."""
    if kind in ("generators", "discriminators", "networks"):
        from torch import nn

        return (lambda b: isinstance(b, nn.Module)), "a torch.nn.Module"
    if kind == "datasets":
        from gancore.components import TensorData

        return (lambda b: isinstance(b, TensorData)), "a gancore.components.TensorData"
    if kind not in _CONTRACTS:
        return None
    what, methods, attrs = _CONTRACTS[kind]
    return (lambda b: all(callable(getattr(b, m, None)) for m in methods) and all(hasattr(b, a) for a in attrs)), \
        f"{what} (with {', '.join(methods + attrs)})"


def _check_call(entry: Entry, one: str, args: tuple[Any, ...], extra: Mapping[str, Any]) -> None:
    """Refuse a builder whose signature does not take what gancore passes it, naming its plugin, before the
    call: else the TypeError would read as a bug of gancore's."""
    try:
        sig = inspect.signature(entry.builder, follow_wrapped=False)  # a decorator may accept more than it wraps
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    try:
        sig.bind(*args, **extra)
    except TypeError as e:
        passed = ", ".join(["cfg"] * len(args) + [f"{k}=..." for k in extra])
        raise PluginError(f"{one} {entry.name!r} of plugin {entry.plugin!r}: its builder cannot be called as "
                          f"gancore calls it, builder({passed}): {e}; see the hook's docstring in "
                          f"gancore/hookspecs.py") from None


class Registries:
    """All registries of one plugin manager, by kind."""

    KINDS = (
        "generators",
        "discriminators",
        "networks",
        "losses",
        "regularizers",
        "samplers",
        "datasets",
        "metrics",
        "recipes",
        "commands",
    )

    def __init__(self) -> None:
        for kind in self.KINDS:
            setattr(self, kind, Registry(kind))

    def __getitem__(self, kind: str) -> Registry:
        return getattr(self, kind)

    generators: Registry
    discriminators: Registry
    networks: Registry
    losses: Registry
    regularizers: Registry
    samplers: Registry
    datasets: Registry
    metrics: Registry
    recipes: Registry
    commands: Registry
