"""Writes that never leave a half-written file or folder under its real name."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def tmp_beside(path: Path, suffix: str = "") -> Path:
    """A hidden temporary name beside ``path``, unique to this process: two processes writing the same file
    (two runs unpacking one shared data cache) each rename their own complete copy into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


TMP_BESIDE = re.compile(r"\..+\.\d+\.tmp(\.\w+)?")  # a name tmp_beside gives: a write a killed process left


@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on any failure deleted."""
    tmp = tmp_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a hidden temporary file beside ``path``, then rename it into place."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # "inf", "-inf", "nan": float() reads each back
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def json_text(data: Any, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259), which has no Infinity or NaN: a non-finite float (a reverse KL with a mode
    missed, a loss gone NaN) is written as the string ``"inf"``, ``"-inf"`` or ``"nan"``, so ``jq``, browsers
    and other languages' parsers read every report and log line we write."""
    return json.dumps(_finite(data), indent=indent, allow_nan=False)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json_text(data, indent=2) + "\n")


def swap_into_place(tmp: Path, final: Path) -> None:
    """Move the complete folder ``tmp`` to ``final``, replacing an existing one as a whole.

    The old folder is renamed aside first and put back if the second rename fails, so ``final`` always
    holds one complete version (a crash between the renames leaves it as ``.old-*``, which
    :func:`gancore.checkpoint.recover` restores).
    """
    if not final.exists():
        os.rename(tmp, final)
        return
    old = final.parent / f".old-{final.name}-{os.getpid()}"
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(path: Path) -> None:
    """Delete a folder so that a crash midway never leaves it looking complete: rename, then delete."""
    doomed = path.parent / f".tmp-del-{path.name}-{os.getpid()}"
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
