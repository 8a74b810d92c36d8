"""Turn a plugin name, a TOML file and overrides into one complete, checked run config."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gancore.config import (
    COMPONENT_SECTIONS,
    SECTIONS,
    TOP_SCALARS,
    DataConfig,
    TrainConfig,
    check_roles,
    check_seed,
    coerce,
    coerce_params,
    default_config,
    merge,
)
from gancore.errors import ConfigError, PluginError, UnknownNameError, blame, suggest
from gancore.plugins import PluginManager, restriction
from gancore.registry import Entry, Registry

SECTION_REGISTRY = {"generator": "generators", "discriminator": "discriminators", "sampler": "samplers",
                    "loss": "losses"}


def component_owners(mgr: PluginManager, cfg: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Which plugin registers each of a config's components (``{"generator": {"name": "dcgan", "plugin":
    "dcgan"}}``, ``"networks.encoder"``, ``"regularizers.r1"``, ``"data"``): recorded in a run's run.json, so that a
    run reopened where another plugin registers the same name is not silently built from it."""
    regs = mgr.registries
    parts = [(role, kind, cfg[role]) for role, kind in {**SECTION_REGISTRY, "data": "datasets"}.items()]
    parts += [(f"networks.{r}", "networks", p) for r, p in cfg["networks"].items()]
    parts += [(f"regularizers.{n}", "regularizers", p) for n, p in cfg["regularizers"].items()]
    owners = {}
    for role, kind, params in parts:
        name = params["name"]
        if name in regs[kind]:
            owners[role] = {"name": name, "plugin": regs[kind].get(name).plugin}
    return owners


def recipe_of(entry: Entry) -> Mapping[str, Any]:
    """A recipe's config dict, or a PluginError naming its plugin: a recipe is a third party's code."""
    with blame(f"recipe {entry.name!r} of plugin {entry.plugin!r} failed"):
        recipe = entry.builder()
    if not isinstance(recipe, Mapping):
        raise PluginError(f"recipe {entry.name!r} of plugin {entry.plugin!r} returned a {type(recipe).__name__}, "
                          f"expected a config dict (sections as in gancore/config.py)")
    try:
        check_keys(dict(recipe))
    except ConfigError as e:  # not the user's --set or TOML: say whose the key is
        raise PluginError(f"recipe {entry.name!r} of plugin {entry.plugin!r}: {e}") from None
    return recipe


def resolve_config(mgr: PluginManager, plugin: str, *layers: dict[str, Any]) -> dict[str, Any]:
    """The recipe of ``plugin`` over the core defaults, then each layer in order; checked and complete."""
    recipes = mgr.registries.recipes
    if plugin not in recipes:
        if why := mgr.failed(plugin):
            raise UnknownNameError(f"plugin {plugin!r} is installed but failed to load ({why}); fix or uninstall "
                                   f"it, and see `gan plugins`")
        hint = "" if restriction() else " (is gancore installed? see `gan plugins`)"
        known = ", ".join(recipes.list()) or f"none{hint}"
        raise UnknownNameError(f"unknown plugin {plugin!r}.{suggest(plugin, recipes.list())} Known plugins: "
                               f"{known}")
    entry = recipes.get(plugin)
    cfg = recipe_cfg = merge(default_config(), recipe_of(entry))
    for layer in layers:
        check_keys(layer)
        if layer.get("plugin", plugin) != plugin:  # else it would be dropped without a word
            raise ConfigError(f"the config sets plugin = {layer['plugin']!r} but this run trains {plugin!r}; choose "
                              f"the plugin with --plugin NAME alone")
        replaced: list[tuple[str, dict[str, Any]]] = []
        cfg = merge(cfg, layer, replaced)
        for section, old in replaced:
            kind = SECTION_REGISTRY.get(section)
            name = layer[section].get("name")
            keys = (set(mgr.registries[kind].get(name).defaults()) if kind and name in mgr.registries[kind]
                    else None)
            if note := switch_note(section, old, layer[section], keys):
                print(f"gancore: note: {note}", file=sys.stderr)
    cfg["plugin"] = plugin
    try:
        out = validate(mgr, cfg)
    except ConfigError as e:
        try:  # the recipe alone (a recipe may leave a required option to the user's layers)
            validate(mgr, {**recipe_cfg, "plugin": plugin})
        except ConfigError as alone:
            if str(alone) == str(e):  # its own key or value, not one of the user's: the plugin's to fix
                raise PluginError(f"recipe {entry.name!r} of plugin {entry.plugin!r}: {e}") from None
        raise
    check_seed(out["seed"])  # new runs only: a saved run with an older, wider seed still opens
    check_new_run(out)
    # file paths are saved absolute, so the run resumes and reopens from any folder: data.dir, and a dataset's own
    # options declared as paths (dataclasses.field(metadata={"path": True}))
    ds_config = mgr.registries.datasets.get(out["data"]["name"]).config
    own = [f.name for f in dataclasses.fields(ds_config) if f.metadata.get("path")] if ds_config else []
    for key in ("dir", *own):
        if isinstance(out["data"].get(key), str) and out["data"][key]:
            out["data"][key] = os.path.abspath(os.path.expanduser(out["data"][key]))
    return out


def check_new_run(cfg: dict[str, Any]) -> None:
    """Checks for new runs only, so that a run saved before them still opens: a sample grid of at most 4096
    (one batch at every ``sample_every``), and ``train.ema_nets`` naming networks of the run even with averaging
    off (a misspelt role would otherwise surface only once it is switched on)."""
    t = cfg["train"]
    if t["sample_count"] > 4096:
        raise ConfigError(f"train.sample_count must be at most 4096 (a grid of 64 x 64), got {t['sample_count']}")
    if not t["ema"]:  # with averaging on, the built networks are checked (gancore.averaging.check_averageable)
        check_roles(t["ema_nets"], ["generator", "discriminator", *cfg["networks"]])


def check_data_dir(cfg: dict[str, Any]) -> None:
    """A ``data.dir`` that is not a folder, for a dataset that loaded without it (gan2d's mixtures read no files):
    refused, as the run would record it and ``gan eval`` would later look for it (datasets that read files refuse
    a missing one themselves, saying where they looked)."""
    folder = cfg["data"].get("dir")
    if folder and not Path(str(folder)).expanduser().is_dir():
        raise ConfigError(f"--data-dir {str(folder)!r} does not exist or is not a folder; dataset "
                          f"{cfg['data']['name']!r} reads no files from it, so leave --data-dir off")


def switch_note(section: str, old: dict[str, Any], new: dict[str, Any], keys: set[str] | None = None) -> str | None:
    """What renaming component ``section`` from ``old`` to ``new`` dropped (``merge`` starts a renamed section
    afresh, since the old options belong to the old component), so a user who switches bigan's sampler to
    ``normal`` learns that the recipe's ``dim = 50`` went with it; None when nothing was dropped. ``keys``, the
    new component's options where known, keeps the note from suggesting one it does not have."""
    dropped = {k: v for k, v in old.items() if k != "name" and k not in new}
    if not dropped:
        return None
    listed = ", ".join(f"{k}={v!r}" for k, v in dropped.items())
    head = f"{section}.name={new['name']} replaces {old.get('name')!r} and drops its options {listed}; "
    again = [k for k in dropped if keys is None or k in keys]
    if not again:
        return head + f"{new['name']!r} has none of them and starts from its own defaults"
    return head + (f"{new['name']!r} starts from its own defaults (set them again to keep them, e.g. "
                   f"--set {section}.{again[0]}=...)")


def check_keys(layer: dict[str, Any]) -> None:
    if not isinstance(layer, Mapping):
        raise ConfigError(f"a config layer must be a dict (e.g. {{\"train\": {{\"steps\": 500}}}}), got "
                          f"{type(layer).__name__}: {layer!r:.80}")
    allowed = set(TOP_SCALARS) | set(SECTIONS)
    for key, value in layer.items():
        if key not in allowed:
            raise ConfigError(f"unknown config key {key!r}.{suggest(key, allowed)} Valid keys: "
                              f"{', '.join(sorted(allowed))}")
        if key in SECTIONS and not isinstance(value, dict):
            example = {"train": "train.steps=500", "data": "data.limit=1000",
                       "regularizers": "regularizers.r1.gamma=10",
                       "networks": "networks.encoder.name=bigan"}.get(key, f"{key}.name=...")
            raise ConfigError(f"config key {key!r} is a section; set its fields, e.g. --set {example}")


def _component(registry: Registry, section: str, params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    name = params.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{section}.name is missing; choose one of: {', '.join(registry.list())}")
    opts = registry.options(name, params, where=section)
    return {"name": name, **registry.get(name).defaults(), **opts}


def validate(mgr: PluginManager, cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every key and type, fill every default; return the config as it will be saved."""
    check_keys(cfg)
    regs = mgr.registries
    out: dict[str, Any] = {}
    for key, tp in TOP_SCALARS.items():
        out[key] = coerce(cfg[key], tp, key)
    out["train"] = dataclasses.asdict(TrainConfig(**coerce_params(TrainConfig, cfg["train"], where="train")))

    data = dict(cfg["data"])
    if isinstance(data.get("name"), str) and ":" in data["name"]:  # NAME:PATH, e.g. --dataset text:corpus.txt
        data["name"], data["path"] = data["name"].split(":", 1)
    core_keys = {f.name for f in dataclasses.fields(DataConfig)}
    core = {k: v for k, v in data.items() if k in core_keys}
    own = {k: v for k, v in data.items() if k not in core_keys}
    core_cfg = dataclasses.asdict(DataConfig(**coerce_params(DataConfig, core, where="data")))
    ds = regs.datasets.get(core_cfg["name"])
    if ds.config is not None:
        try:
            own = coerce_params(ds.config, own, where=f"data {ds.name!r}")
        except ConfigError as e:
            raise ConfigError(f"{e} (core data keys: {', '.join(sorted(core_keys))})") from None
    elif own:
        raise ConfigError(f"unknown data keys {sorted(own)}; valid: {', '.join(sorted(core_keys))}")
    out["data"] = {**core_cfg, **ds.defaults(), **own}

    for section in COMPONENT_SECTIONS:
        out[section] = _component(regs[SECTION_REGISTRY[section]], section, cfg[section])

    out["regularizers"] = {}
    for name, params in cfg["regularizers"].items():
        if not isinstance(params, dict):
            raise ConfigError(f"regularizers.{name} must be a table of options (use {{}} for none)")
        out["regularizers"][name] = _component(regs.regularizers, f"regularizers.{name}",
                                               {"name": name, **params})
    out["networks"] = {}
    for role, params in cfg["networks"].items():
        if not isinstance(params, dict):
            raise ConfigError(f"networks.{role} must be a table with name and group")
        params = dict(params)
        group = params.pop("group", "generator")
        if group not in ("generator", "discriminator"):
            raise ConfigError(f"networks.{role}.group must be 'generator' or 'discriminator', got {group!r}")
        out["networks"][role] = {**_component(regs.networks, f"networks.{role}", params), "group": group}
    return out


def split_name(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"name": n, **opts}`` -> ``(n, opts)``."""
    p = dict(params)
    return p.pop("name"), p
