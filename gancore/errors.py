"""Errors a user can act on. The CLI prints them on one line and exits with code 2."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class GanError(Exception):
    """A problem with the user's input or environment, with a message saying what to do."""

    exit_code = 2


class ConfigError(GanError):
    """A config key, value or type that cannot be used."""


class PluginError(GanError):
    """A plugin or component that is unknown, duplicated or broken."""


class UnknownNameError(PluginError):
    """A name no loaded plugin registered (a misspelling, a plugin not installed, or one filtered out)."""


class DataError(GanError):
    """A dataset that is missing or unreadable."""


class NoHeldOutError(DataError):
    """The dataset has no held-out (test) examples: an image folder without ``test/``."""


class CheckpointError(GanError):
    """A run or checkpoint that is missing, corrupt or unsafe."""


class ExportError(GanError):
    """An export that failed its checks, or a model file that is not ours."""


def path_arg(value: object, what: str, error: type[GanError] = GanError) -> Path:
    """A function argument that names a file or folder, as a Path; ``error`` naming ``what`` if it is not a str
    or path (a script's ``None`` or a number would otherwise surface as a TypeError deep inside)."""
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise error(f"{what} must be a path (a str or pathlib.Path), got {type(value).__name__} {value!r}")


def suggest(name: str, known: Iterable[str]) -> str:
    """A ' Did you mean X?' hint for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def failure(e: BaseException) -> str:
    """A plugin's error as one line: a :class:`GanError` says what to do; anything else is named by its type, as
    it is most likely a bug in the plugin."""
    if isinstance(e, GanError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


TRACEBACK_ENV = "GANCORE_TRACEBACK"  # =1: the CLI prints the traceback behind a plugin's error too


def passes_through(e: BaseException) -> bool:
    """Errors a plugin's call does not turn into a PluginError: its own clear GanError, and running out of
    memory (torch's OutOfMemoryError is a RuntimeError), which is no bug of the plugin's."""
    return isinstance(e, GanError | MemoryError) or type(e).__name__ == "OutOfMemoryError"


def where(e: BaseException) -> str:
    """The file and line an exception was raised at, as `` (nets.py:12)``, or ''."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" ({Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})" if tb is not None else ""


def innermost(e: BaseException, objects: Mapping[str, object]) -> str | None:
    """The key of the object in ``objects`` innermost on the way to ``e``: which component a training error came
    from. A frame belongs to an object whose ``self`` it has (the object, or for a network one of its layers);
    failing that, to the one object whose class's module the frame's code is in (a helper function beside it),
    where that module holds no other object's class and is not torch's or gancore's."""
    members: dict[int, str] = {}
    by_module: dict[str, list[str]] = {}
    for key, obj in objects.items():
        layers = obj.modules() if callable(getattr(obj, "modules", None)) else ()  # type: ignore[attr-defined]
        for m in (obj, *layers):
            members.setdefault(id(m), key)
        by_module.setdefault(type(obj).__module__, []).append(key)
    own = {mod: keys[0] for mod, keys in by_module.items()
           if len(keys) == 1 and mod.split(".")[0] not in ("torch", "gancore", "builtins")}
    tb, found = e.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        me = frame.f_locals.get("self")
        key = members.get(id(me)) if me is not None else None
        if key is None:
            key = own.get(frame.f_globals.get("__name__", ""))
        if key is not None:
            found = key
        tb = tb.tb_next
    return found


def blamed(what: str, e: BaseException, hint: str = "") -> PluginError:
    """``"{what} (file.py:12): Type: message; ..."``: a plugin's error, with where it was raised."""
    return PluginError(f"{what}{where(e)}: {failure(e)}; {hint}{TRACEBACK_ENV}=1 shows the traceback")


@contextmanager
def blame(what: str, hint: str = "") -> Iterator[None]:
    """Turn an error raised inside (a plugin's builder, recipe or hook) into :func:`blamed`'s PluginError, unless
    it :func:`passes_through`; the original is its ``__cause__``."""
    try:
        yield
    except Exception as e:
        if passes_through(e):
            raise
        raise blamed(what, e, hint) from e
