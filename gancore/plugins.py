"""The plugin manager: load plugins from entry points, collect what each registered.

Environment variables (as pytest and simonw/llm do):

- ``GANCORE_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins (the core's own components stay).
- ``GANCORE_PLUGINS=dcgan,foo``: load only these entry points.

A plugin that fails to import or to register is reported by name; the others keep working.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pluggy

from gancore import hookspecs
from gancore.errors import PluginError, blame, blamed, failure, passes_through, suggest
from gancore.registry import Registries

GROUP = "gancore"
hookimpl = pluggy.HookimplMarker(GROUP)
ENV_DISABLE = "GANCORE_DISABLE_PLUGIN_AUTOLOAD"
ENV_ONLY = "GANCORE_PLUGINS"

# a training or export hook runs for every run, whichever plugin's it is: say how to train without the broken one
SKIP_HINT = f"{ENV_ONLY}=<plugins to load> leaves it out; "
REGISTRATION_HOOKS = {kind: f"gan_register_{kind}" for kind in Registries.KINDS}


def _disabled() -> bool:
    # Any value but an explicit "off" disables, as pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD does.
    return os.environ.get(ENV_DISABLE, "").strip().lower() not in ("", "0", "false", "no", "off")


def restriction() -> str | None:
    """The environment setting that keeps installed plugins from loading (``"GANCORE_PLUGINS=dcgan"``), if any:
    an unknown-name error names it, since the name may belong to a plugin it filtered out."""
    if _disabled():
        return f"{ENV_DISABLE}={os.environ[ENV_DISABLE]}"
    return f"{ENV_ONLY}={os.environ[ENV_ONLY]}" if ENV_ONLY in os.environ else None


@dataclass
class PluginInfo:
    """Where one plugin came from and what it registered."""

    name: str
    distribution: str | None = None
    version: str | None = None
    origin: str | None = None  # the file its module was loaded from
    entry_point: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = {"name": self.name, "distribution": self.distribution, "version": self.version,
             "origin": self.origin, "entry_point": self.entry_point,
             "components": {k: v for k, v in self.components.items() if v}}
        if self.error:
            d["error"] = self.error
        return d


class PluginManager:
    """Plugins, their info, and the registries they filled."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries()
        self.info: dict[str, PluginInfo] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def add(self, plugin: object, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object (module) under ``name``; it is filled into the registries by ``collect``.
        A PluginError if the name is taken, or a hook function does not match its spec or has none."""
        if self.pm.has_plugin(name):
            raise PluginError(f"two plugins are named {name!r}; uninstall one of them")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as e:  # e.g. an argument the hookspec does not have
            if self.pm.has_plugin(name):  # pluggy before 1.7 keeps the hooks it added before the bad one
                self.pm.unregister(name=name)
            raise PluginError(f"plugin {name!r}: {e}; see gancore/hookspecs.py") from None
        unknown = [c.name for c in self.pm.get_hookcallers(plugin) or [] if not c.has_spec()
                   and not all(i.optionalhook for i in c.get_hookimpls() if i.plugin_name == name)]
        if unknown:  # a misspelt hook would otherwise never be called, without a word
            self.pm.unregister(name=name)
            specs = [n for n in dir(hookspecs) if n.startswith("gan_")]
            raise PluginError(f"plugin {name!r} implements {unknown[0]}, which is not a gancore hook."
                              f"{suggest(unknown[0], specs)} (the hooks are in gancore/hookspecs.py; mark a hook "
                              f"of a newer gancore @hookimpl(optionalhook=True))")
        self.info[name] = info or PluginInfo(name=name, origin=_origin(plugin))

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call hook ``hook_name`` as pluggy does; an exception from a plugin's function becomes a PluginError
        naming the plugin, the hook and where it was raised (the training and export hooks run for every run, so
        one broken plugin would otherwise read as a bug of whichever recipe is training)."""
        caller = getattr(self.pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except Exception as e:
            if passes_through(e) or (culprit := _culprit(caller.get_hookimpls(), e)) is None:
                raise
            raise blamed(f"plugin {culprit!r} failed in {hook_name}", e, SKIP_HINT) from e

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Each plugin's answer to hook ``hook_name`` with the plugin's name, in pluggy's order (last registered
        first), Nones left out: for a hook whose answers are checked, so that a bad one can be traced to its
        plugin. Wrappers are not run (gancore's own hooks that use this have none)."""
        out = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            with blame(f"plugin {impl.plugin_name!r} failed in {hook_name}", SKIP_HINT):
                answer = impl.function(**{k: kwargs[k] for k in impl.argnames})
            if answer is not None:
                out.append((impl.plugin_name, answer))
        return out

    def load_entry_points(self) -> None:
        if _disabled():
            if os.environ.get(ENV_ONLY):
                _warn(f"{ENV_ONLY} is ignored: {ENV_DISABLE}={os.environ[ENV_DISABLE]} loads no plugin at all")
            return
        only = os.environ.get(ENV_ONLY)
        allowed = {n.strip() for n in only.split(",") if n.strip()} if only is not None else None
        seen: dict[str, str | None] = {}  # plugin name -> the distribution that provides it
        for ep in md.entry_points(group=GROUP):
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist else None
            if ep.name in seen:
                if seen[ep.name] != dist_name:  # else the same distribution, visible twice on sys.path
                    _warn(f"two installed distributions provide a plugin named {ep.name!r}: {seen[ep.name]} and "
                          f"{dist_name}; {dist_name}'s is not loaded. Uninstall one of them")
                continue
            seen[ep.name] = dist_name
            if allowed is not None and ep.name not in allowed:
                continue
            info = PluginInfo(name=ep.name, distribution=dist_name, version=dist.version if dist else None,
                              entry_point=ep.value)
            if ep.name in self.info:  # the core's own name, or a plugin added before: not even imported
                _warn(f"{dist_name or ep.value} provides a plugin named {ep.name!r}, a name already taken; it is "
                      f"not loaded. Uninstall it, or ask its author to rename its entry point")
                continue
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as e:  # a broken third-party plugin must not take the others down
                info.error = f"import failed: {failure(e)}"
                self.info[ep.name] = info
                _warn(f"plugin {ep.name!r} ({ep.value}) failed to load and is skipped: {failure(e)}")
                continue
            info.origin = _origin(plugin)
            try:
                self.add(plugin, ep.name, info)
            except PluginError as e:  # as for an import error: the plugin is skipped, the others keep working
                info.error = str(e)
                self.info[ep.name] = info
                _warn(f"plugin {ep.name!r} ({ep.value}) is skipped: {e}")
        if allowed is not None:
            self._check_allowed(allowed, set(seen))

    @staticmethod
    def _check_allowed(allowed: set[str], seen: set[str]) -> None:
        """Warn about names in the allow-list that no installed plugin has (or an empty list): such a filter
        would otherwise load nothing, silently."""
        installed = ", ".join(sorted(seen)) or "none"
        for name in sorted(allowed - seen) if allowed else [""]:
            what = (f"names {name!r}, which no installed plugin is called.{suggest(name.lower(), seen)}" if name
                    else "is set but empty, so no plugin loads; unset it to load them all.")
            _warn(f"{ENV_ONLY} {what} Installed plugins: {installed}")

    def collect(self) -> None:
        """Call every registration hook, plugin by plugin (in loading order), so each component knows its plugin.

        A plugin is collected whole or not at all: one that fails in any of its hooks has what it registered
        dropped and its hooks unregistered, before the next plugin registers, so it cannot take a name another
        plugin would have had, nor have its training or export hooks called."""
        impls = {hook: getattr(self.pm.hook, hook).get_hookimpls() for hook in REGISTRATION_HOOKS.values()}
        for name, info in list(self.info.items()):
            if info.error or not self.pm.has_plugin(name):
                continue
            for kind, hook_name in REGISTRATION_HOOKS.items():
                registry = self.registries[kind]

                def register(comp_name: str, builder: Any, *, _plugin: str = name, _reg: Any = registry,
                             **kw: Any) -> None:
                    _reg.register(comp_name, builder, plugin=_plugin, **kw)

                try:
                    for impl in (i for i in impls[hook_name] if i.plugin_name == name):
                        impl.function(register=register)
                except Exception as e:
                    info.error = f"{hook_name} failed: {type(e).__name__}: {e}"
                    self._unregister(name)  # all or nothing: a half-loaded plugin trains nothing it promises
                    _warn(f"plugin {name!r} failed in {hook_name} and is not loaded: {failure(e)}")
                    break
        for info in self.info.values():
            info.components = {kind: [e.name for e in self.registries[kind].entries() if e.plugin == info.name]
                               for kind in Registries.KINDS}

    def _unregister(self, plugin: str) -> None:
        """Drop every component ``plugin`` registered so far, and its hooks."""
        for kind in Registries.KINDS:
            self.registries[kind].drop_plugin(plugin)
        self.pm.unregister(name=plugin)

    def failed(self, name: str) -> str | None:
        """Why plugin ``name`` is installed but not loaded, if it is."""
        info = self.info.get(name)
        return info.error if info else None

    def report(self, options: bool = False) -> list[dict[str, Any]]:
        """Each plugin's info; with ``options``, each component as ``{name, description, options: {key: default}}``
        (``None`` marks a required option) rather than its name alone."""
        out = [self.info[n].to_json() for n in sorted(self.info)]
        if options:
            for plugin in out:
                plugin["components"] = {
                    kind: [{"name": e.name, "description": e.description, "options": e.defaults()}
                           for e in self.registries[kind].entries() if e.name in names]
                    for kind, names in plugin["components"].items()}
        return out


def _culprit(impls: list[Any], e: BaseException) -> str | None:
    """The plugin whose hook function is innermost on the way to ``e``: matched by code object and, for methods,
    by instance (two instances of one class share their code)."""
    owners = [(getattr(i.function, "__code__", None), getattr(i.function, "__self__", None), i.plugin_name)
              for i in impls]
    tb, culprit = e.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        for code, owner, name in owners:
            if code is frame.f_code and (owner is None or frame.f_locals.get("self") is owner):
                culprit = name
        tb = tb.tb_next
    return culprit


def _origin(plugin: object) -> str | None:
    f = getattr(plugin, "__file__", None)
    return str(Path(f).resolve()) if f else None


def _warn(msg: str) -> None:
    print(f"gancore: warning: {msg}", file=sys.stderr)


def build_manager(extra: list[tuple[str, object]] | None = None, *, autoload: bool = True) -> PluginManager:
    """A manager with the core's own components, the entry-point plugins and any ``extra`` plugins."""
    from gancore import builtin

    mgr = PluginManager()
    mgr.add(builtin, "gancore", PluginInfo(name="gancore", distribution="gancore", version=_version(),
                                           origin=_origin(builtin)))
    if autoload:
        mgr.load_entry_points()
    for name, plugin in extra or []:
        mgr.add(plugin, name)
    mgr.collect()
    return mgr


def _version() -> str | None:
    try:
        return md.version("gancore")
    except md.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def get_manager() -> PluginManager:
    """The process-wide plugin manager (built on first use)."""
    return build_manager()


def reset_manager() -> None:
    """Forget the process-wide manager (tests, and after ``gan install``)."""
    get_manager.cache_clear()


def list_plugins() -> list[dict[str, Any]]:
    """Each loaded plugin's name, distribution, version, origin and the components it registered (``gan plugins``)."""
    return get_manager().report()
