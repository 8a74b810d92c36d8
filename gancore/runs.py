"""Run folders: create one without ever overwriting, and open an existing one."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from gancore.checkpoint import checkpoint_step, list_checkpoints, load_weights, read_json
from gancore.config import merge, whole
from gancore.errors import CheckpointError, ConfigError, UnknownNameError
from gancore.fsutil import write_json_atomic
from gancore.plugins import PluginManager, get_manager, restriction
from gancore.resolve import component_owners, validate
from gancore.state import TrainState, build_state

RUNS_DIR = Path("runs")


def check_run_dir(out: str | Path | None) -> None:
    """Refuse an ``--out`` that already exists (runs are never overwritten) or is empty."""
    out = None if out is None else str(out)  # the Python API may pass a Path
    if out is not None and not out.strip():  # most likely an unset shell variable: `--out "$DIR"`
        raise ConfigError(f"--out is empty; name the run folder to create, or leave --out off for "
                          f"{RUNS_DIR}/<plugin>-NNNN")
    if out and Path(out).exists():
        path = Path(out)
        go_on = " (it is not a run to resume)"
        if is_run_dir(path):
            go_on = (f", or continue it with --resume {out}" if list_checkpoints(path / "checkpoints") else
                     " (it has no checkpoint, so there is nothing to resume: unless it is still training, "
                     "delete it to use the name again)")
        raise ConfigError(f"run folder {out!r} already exists and is never overwritten; choose another --out{go_on}")


def discard_unstarted(state: TrainState) -> str | None:
    """Remove the run folder of a new run that failed in its first step (a loss or regularizer that does not fit
    the networks, found only when it runs): it holds only what :func:`write_run_files` wrote, and left in place it
    would block its own name. Returns what was done, or None where the run had begun (kept, to inspect or
    resume)."""
    run_dir = state.run_dir
    if run_dir is None or state.step != 0 or list_checkpoints(run_dir / "checkpoints"):
        return None
    shutil.rmtree(run_dir, ignore_errors=True)
    if run_dir.exists():
        return f"could not remove {run_dir}, which the run made before it failed; delete it to use the name again"
    return f"removed {run_dir}: the run failed before its first step, so it held nothing to keep"


def new_run_dir(plugin: str, out: str | Path | None) -> Path:
    """``out`` if given (it must not exist), else the next free ``runs/<plugin>-NNNN``."""
    check_run_dir(out)
    out = None if out is None else str(out)
    if out:
        path = Path(out)
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise ConfigError(f"cannot create run folder {str(path)!r}: {e.strerror or e}; "
                              f"choose a writable --out") from None
        return path
    try:
        RUNS_DIR.mkdir(exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {RUNS_DIR}/ here: {e.strerror or e}; choose a writable --out") from None
    pattern = re.compile(rf"^{re.escape(plugin)}-(\d+)$")
    n = max((int(m.group(1)) for p in RUNS_DIR.iterdir() if (m := pattern.match(p.name))), default=0)
    while True:
        n += 1
        path = RUNS_DIR / f"{plugin}-{n:04d}"
        try:
            path.mkdir()  # atomic: two runs started at once cannot take the same folder
            return path
        except FileExistsError:
            continue


def write_run_files(state: TrainState) -> None:
    assert state.run_dir is not None
    write_json_atomic(state.run_dir / "config.json", state.config)
    write_json_atomic(state.run_dir / "run.json", {
        "plugin": state.config["plugin"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": state.data_info,
        "latent": [s.to_json() for s in state.latent_specs],
        "plugins": {n: i.version for n, i in state.manager.info.items()},
        "components": component_owners(state.manager, state.config),
    })


def _check_owners(path: Path, mgr: PluginManager, cfg: dict[str, Any]) -> None:
    """Refuse to rebuild a run from a component another plugin now provides under the name it was trained with."""
    try:
        recorded = json.loads((path / "run.json").read_text()).get("components") or {}
    except (OSError, ValueError, AttributeError):
        return  # data_description has checked the file; a run written before gancore recorded owners
    now = component_owners(mgr, cfg)
    for role, was in recorded.items():
        if isinstance(was, dict) and role in now and now[role]["name"] == was.get("name") \
                and now[role]["plugin"] != was.get("plugin"):
            raise CheckpointError(
                f"run {path} was trained with {role} {was['name']!r} of plugin {was.get('plugin')!r}, and here "
                f"plugin {now[role]['plugin']!r} provides a {role.split('.')[0]} of that name; install "
                f"{was.get('plugin')!r} again (run.json lists the versions it used), or set GANCORE_PLUGINS to load "
                f"it and leave the other out")


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "run.json").is_file()


def data_description(path: Path) -> dict[str, Any]:
    """The data facts a run folder's ``run.json`` recorded when it started (what its networks were built for)."""
    info = read_json(path / "run.json", "run description").get("data")
    if not isinstance(info, dict) or not {"kind", "shape", "value_range"} <= info.keys():
        raise CheckpointError(f"run description {path / 'run.json'} is corrupt (no \"data\" object with the data's "
                              f"kind, shape and value_range, which the run wrote when it started); restore the file "
                              f"from a copy of the run")
    return info


def _missing_plugins(path: Path, mgr: PluginManager) -> str:
    """The plugins ``run.json`` says the run was trained with that are not loaded here, as a hint: a run folder
    outlives the plugin that made it when that plugin is uninstalled or filtered out."""
    try:
        meta = json.loads((path / "run.json").read_text())
        used, owners = meta.get("plugins", {}), meta.get("components")
        if isinstance(owners, dict):  # the plugins its components came from, not every one loaded at the time
            needed = {o.get("plugin") for o in owners.values() if isinstance(o, dict)}
            used = {name: version for name, version in used.items() if name in needed}
    except (OSError, ValueError, AttributeError):
        return ""
    gone = {name: version for name, version in used.items() if name not in mgr.info or mgr.info[name].error}
    if not gone:
        return ""
    listed = ", ".join(f"{name} {version}" if version else name for name, version in sorted(gone.items()))
    if setting := restriction():  # installed, most likely, but filtered out: installing again would not help
        return (f". The run was trained with plugins not loaded here: {listed}; plugin loading is restricted by "
                f"{setting}: unset it, or add the plugins the run needs")
    return f". The run was trained with plugins not loaded here: {listed}; install them (see `gan plugins`)"


def load_run_config(path: Path, mgr: PluginManager, *, device: str | None = None,
                    steps: int | None = None, on_nan: str | None = None) -> dict[str, Any]:
    """A run folder's saved config, with ``device``, ``steps`` and ``on_nan`` overridden, checked as a new one
    would be."""
    if not is_run_dir(path):
        if path.is_dir():
            what = "is not a gancore run folder (no config.json and run.json)"
        elif path.name.endswith((".pt2", ".torchscript.pt")):
            what = ("is a PyTorch export, not a gancore run folder; load it with torch.export.load (.pt2) or "
                    "torch.jit.load (.torchscript.pt), or give gan the run folder or an .onnx export")
        elif path.exists():
            what = "is a file, not a gancore run folder (runs are folders like runs/dcgan-0001)"
        else:
            what = "is not a gancore run folder: it does not exist (runs are folders like runs/dcgan-0001)"
        raise CheckpointError(f"{str(path)!r} {what}")
    data_description(path)  # a resumed run must still open for sampling and export
    cfg = read_json(path / "config.json", "run config")
    try:
        saved = validate(mgr, cfg)
    except (ConfigError, UnknownNameError, KeyError, TypeError) as e:
        raise CheckpointError(f"run config {path / 'config.json'} is not usable: {e}{_missing_plugins(path, mgr)}") \
            from None
    _check_owners(path, mgr, saved)
    if device:
        saved["device"] = device  # checked where the run is built, as for a new run
    over = {k: v for k, v in (("steps", steps), ("on_nan", on_nan)) if v is not None}
    if not over:
        return saved
    # Checked apart from the saved config, so that a bad --steps or --on-nan is blamed, not the run.
    return validate(mgr, merge(saved, {"train": over}))


def open_run(run: str | Path, *, mgr: PluginManager | None = None, checkpoint: str | None = None,
             device: str | None = None, live: bool = False) -> TrainState:
    """Rebuild a run from its folder and load a checkpoint's weights (the latest unless ``checkpoint`` names one).

    A run trained with ``train.ema`` is used through its averaged networks (``train.ema_nets``), loaded into
    the networks themselves (the state keeps no separate average); ``live`` takes its last step's weights instead."""
    path = Path(run)
    mgr = mgr or get_manager()
    cfg = load_run_config(path, mgr, device=device)
    state = build_state(mgr, cfg, data_info=data_description(path))
    state.run_dir = path
    ckpt = pick_checkpoint(path, checkpoint)
    load_weights(state, ckpt, averaged=not live)
    state.step = checkpoint_step(ckpt)
    for m in state.nets.named().values():
        m.eval()
    return state


def pick_checkpoint(run_dir: Path, name: str | int | None = None) -> Path:
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if (step := whole(name)) is not None:  # the Python API's checkpoint=500
        name = str(step)
    if name is not None and not isinstance(name, str):
        raise CheckpointError(f"checkpoint must be a step (500) or a folder name (step-0000500), got {name!r}")
    if name is not None and not name.strip():  # most likely an unset shell variable: --checkpoint "$CK"
        raise CheckpointError("--checkpoint is empty; give a step (500) or a folder name (step-0000500), or leave "
                              "it off for the latest")
    if name:
        wanted = f"step-{int(name):07d}" if name.isascii() and name.isdigit() else name  # not int("²")
        match = [c for c in ckpts if c.name == wanted]
        if not match:
            raise CheckpointError(f"checkpoint {name!r} not found in {run_dir}; have: "
                                  f"{', '.join(c.name for c in ckpts) or 'none'}")
        return match[0]
    if not ckpts:
        raise CheckpointError(f"run {str(run_dir)!r} has no complete checkpoint yet")
    return ckpts[-1]
