"""Export a trained run: ONNX (fp32, fp16, onnxruntime-optimised), torch.export's ``.pt2`` and TorchScript, all
parity-checked, plus a JSON card.

Files are written into a hidden temporary folder and moved to ``exported/<run>/`` only once every
check has passed, so a failed export leaves nothing behind and an existing export is never clobbered
(unless ``force``, which swaps the whole folder).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gancore import __version__
from gancore.averaging import averaged_nets
from gancore.components import ExportModel, LatentSpec, draw
from gancore.deploy import MAX_BATCH
from gancore.errors import ExportError, path_arg, where
from gancore.fsutil import TMP_BESIDE, json_text, swap_into_place
from gancore.images import drawn_by_gancore
from gancore.runs import open_run
from gancore.state import TrainState

EXPORT_DIR = Path("exported")
FORMATS = ("onnx", "onnx-fp16", "onnx-opt", "pt2", "torchscript")
SUFFIX = {"onnx": ".onnx", "onnx-fp16": ".fp16.onnx", "onnx-opt": ".opt.onnx", "pt2": ".pt2",
          "torchscript": ".torchscript.pt"}
PT2_METADATA = "gancore.json"  # the extra file of a .pt2 archive that holds what ONNX's metadata_props hold
TOLERANCE = 1e-4  # fp32 on CPU
FP16_TOLERANCE = 2e-2  # fp16 weights and activations against the fp32 module; outputs are O(1)
PARITY_BATCHES = (1, 5)


class Half(nn.Module):
    """fp32 in, fp16 inside, fp32 out: an fp16 export keeps the fp32 model's inputs, outputs and metadata."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, *args: Tensor) -> Any:
        out = self.module(*[a.half() if a.is_floating_point() else a for a in args])
        outs = out if isinstance(out, tuple | list) else (out,)
        back = tuple(o.float() if o.is_floating_point() else o for o in outs)
        return back if isinstance(out, tuple | list) else back[0]


class Positional(nn.Module):
    """Call a module that takes named tensors with positional ones (ONNX and TorchScript want these)."""

    def __init__(self, module: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.names = list(names)

    def forward(self, *args: Tensor) -> Any:
        return self.module(**dict(zip(self.names, args, strict=True)))


def generator_model(state: TrainState) -> ExportModel:
    specs = list(state.latent_specs)
    data = state.data_info
    output = {"name": "images" if data.get("kind") == "image" else "samples", "shape": data["shape"],
              "dtype": "float32", "value_range": data["value_range"],
              "layout": "NCHW" if data.get("kind") == "image" else "N..."}
    return ExportModel(module=Positional(state.nets.generator, [s.name for s in specs]), inputs=specs,
                       outputs=[output["name"]], kind="generator",
                       metadata={"output": output, "classes": data.get("classes"), "vocab": data.get("vocab"),
                                 "data": data, "data_name": state.config["data"]["name"]})


def _examples(specs: Sequence[LatentSpec], n: int, seed: int) -> tuple[Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(draw(s, n, gen, torch.device("cpu")) for s in specs)


def _as_list(out: Any) -> list[np.ndarray]:
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o.detach().cpu().numpy() for o in outs]


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b):
        return float("inf")
    diffs = []
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return float("inf")
        if x.dtype.kind in "iu":  # token ids must match exactly
            diffs.append(0.0 if np.array_equal(x, y) else float("inf"))
        else:
            diffs.append(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0)
    return max(diffs)


def _batch_dims(module: nn.Module, n: int, batch: Any) -> tuple[Any, ...]:
    """Dim 0 of every input is the batch; ``forward(*args)`` takes them as one tuple, ``forward(a, b)`` one each."""
    params = inspect.signature(module.forward).parameters.values()
    each = tuple({0: batch} for _ in range(n))
    return (each,) if any(p.kind is p.VAR_POSITIONAL for p in params) else each


def _onnx_parity(module: nn.Module, model: ExportModel, path: Path, tolerance: float, what: str) -> dict[str, float]:
    """Max abs diff between onnxruntime (CPU, where parity is measured) and PyTorch at each parity batch."""
    from gancore.deploy import session

    sess = session(path, device="cpu")
    names = [s.name for s in model.inputs]
    parity = {}
    for n in PARITY_BATCHES:
        inputs = _examples(model.inputs, n, seed=100 + n)
        with torch.no_grad():
            ref = _as_list(module(*inputs))
        got = sess.run(None, {name: t.numpy() for name, t in zip(names, inputs, strict=True)})
        diff = _max_diff(ref, got)
        parity[str(n)] = diff
        if not diff <= tolerance:
            raise ExportError(f"onnxruntime ({what}) and PyTorch disagree on the {model.kind} at batch {n}: max abs "
                              f"diff {diff:.3g} > {tolerance}; nothing was exported")
    return parity


def model_metadata(model: ExportModel, metadata: dict[str, Any], precision: str) -> dict[str, Any]:
    """What an exported file carries about itself (ONNX in ``metadata_props``, ``.pt2`` in ``gancore.json``): the
    run's facts, the model's own, its precision and kind, and its input specs."""
    return {**metadata, **model.metadata, "precision": precision, "kind": model.kind,
            "inputs": [s.to_json() for s in model.inputs]}


def export_onnx(model: ExportModel, path: Path, metadata: dict[str, Any], *, fp16: bool = False) -> dict[str, Any]:
    """Write ``model`` as one ONNX file with a dynamic batch; check it fully and against PyTorch.

    With ``fp16`` the graph computes in half precision behind fp32 inputs and outputs (for GPUs), and its
    parity is measured against the fp32 module with a tolerance fitting fp16.
    """
    import onnx

    reference = model.module.eval()
    module = Half(reference).eval() if fp16 else reference
    names = [s.name for s in model.inputs]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = _examples(model.inputs, 2, seed=0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, example, dynamo=True, input_names=names, output_names=model.outputs,
                                        dynamic_shapes=_batch_dims(module, len(names), batch),
                                        external_data=False, verbose=False)
        except Exception as e:
            root = e
            while root.__cause__ is not None:  # torch's "step 1/3 ... Next steps" wraps the module's own error
                root = root.__cause__
            raise ExportError(f"torch.onnx.export failed for the {model.kind}{where(root)}: {type(root).__name__}: "
                              f"{(str(root).strip().splitlines() or [''])[0][:300]}") from None
    assert program is not None
    proto = program.model_proto
    if len(proto.graph.output) != len(model.outputs):  # else the card would name outputs the file lacks
        raise ExportError(f"the {model.kind}'s module returns {len(proto.graph.output)} output(s), but its "
                          f"ExportModel names {len(model.outputs)}: {', '.join(model.outputs)}; nothing was exported")
    precision = {"precision": "float16" if fp16 else "float32"}
    for key, value in model_metadata(model, metadata, precision["precision"]).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"gancore.{key}", json.dumps(value)
    onnx.save_model(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(f"onnx checker rejected the {model.kind}: {str(e).splitlines()[0][:300]}") from None
    tolerance = FP16_TOLERANCE if fp16 else TOLERANCE
    parity = _onnx_parity(reference, model, path, tolerance, "fp16" if fp16 else "fp32")
    return {"file": path.name, "max_abs_diff": parity, "tolerance": tolerance, **precision}


def optimize_onnx(model: ExportModel, src: Path, path: Path) -> dict[str, Any]:
    """Save onnxruntime's optimised graph of ``src`` (level extended, CPU provider) for a faster start-up.

    Extended rather than all: the all level adds layout changes tied to this CPU's vector width, which
    onnxruntime applies at load time anyway. The fused nodes are CPU-provider kernels, so the file is for CPU.
    """
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(path)
    opts.log_severity_level = 3
    ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
    proto = onnx.load_model(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "gancore.optimized_for", json.dumps({"provider": "CPUExecutionProvider",
                                                                   "level": "extended",
                                                                   "onnxruntime": ort.__version__})
    onnx.save_model(proto, str(path))
    parity = _onnx_parity(model.module.eval(), model, path, TOLERANCE, "optimised graph")
    return {"file": path.name, "max_abs_diff": parity, "tolerance": TOLERANCE, "optimized_for": "CPUExecutionProvider"}


def _torch_parity(module: nn.Module, loaded: Any, model: ExportModel, what: str) -> dict[str, float]:
    """Max abs diff between a reloaded PyTorch artifact and the eager module at each parity batch."""
    parity = {}
    for n in PARITY_BATCHES:
        inputs = _examples(model.inputs, n, seed=200 + n)
        with torch.no_grad():
            diff = _max_diff(_as_list(module(*inputs)), _as_list(loaded(*inputs)))
        parity[str(n)] = diff
        if not diff <= TOLERANCE:
            raise ExportError(f"{what} and eager disagree on the {model.kind} at batch {n} "
                              f"(max abs diff {diff:.3g}); nothing was exported")
    return parity


def export_torchscript(model: ExportModel, path: Path) -> dict[str, Any]:
    """Trace to TorchScript (deprecated upstream; its warnings are kept from users) and check parity."""
    module = model.module.eval()
    example = _examples(model.inputs, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(module, example, check_trace=False)
            traced.save(str(path))
            loaded = torch.jit.load(str(path))
        except Exception as e:
            raise ExportError(f"TorchScript tracing failed for the {model.kind}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:300]}") from None
        parity = _torch_parity(module, loaded, model, "TorchScript")
    return {"file": path.name, "max_abs_diff": parity, "tolerance": TOLERANCE}


# The torch >= 2.8 archive layout: JSON records, raw tensor bytes, and (empty) sample inputs; anything else, such
# as the torch.save()d state dicts of older releases, is treated as a pickle.
PT2_RECORDS = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")


def _pickled_entries(path: Path) -> list[str]:
    """What a ``.pt2`` archive holds that is, or may be, a pickle: tensors its weights and constants configs mark
    ``use_pickle`` (tensor subclasses), non-empty sample inputs (``torch.save``d), and any member outside the
    layout above (an allowlist, so an unknown layout counts against it). Ours must hold none."""
    found = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if not any(n.split("/", 1)[-1] == "archive_format" for n in names):
            return [f"{path.name} (not the torch >= 2.8 archive layout)"]
        for name in names:
            inner = name.split("/", 1)[-1]  # members sit under one folder named after the archive
            if inner.endswith(("_weights_config.json", "_constants_config.json")):
                config = json.loads(z.read(name))["config"]
                found += [f"{name}:{key}" for key, entry in config.items() if entry.get("use_pickle", True)]
            elif inner.startswith("data/sample_inputs/"):
                if z.getinfo(name).file_size:
                    found.append(name)
            elif not (inner in PT2_RECORDS or inner.endswith(".json") or inner.startswith("extra/")
                      or (inner.startswith(("data/weights/", "data/constants/")) and not inner.endswith(".pt"))):
                found.append(name)
    return found


def export_pt2(model: ExportModel, path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` with ``torch.export`` (dynamic batch) as a ``.pt2`` archive of its ExportedProgram; check
    that it holds no pickle and that ``torch.export.load`` matches eager.

    The archive keeps raw tensor bytes and a JSON graph; the example inputs torch would pickle beside them are
    dropped (tools that compile the program, such as AOTInductor, want them back: draw them from the input
    specs). The metadata ONNX keeps in ``metadata_props`` goes in the extra file ``gancore.json``."""
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 8):  # older archives torch.save() weights
        raise ExportError(f"--format pt2 needs torch 2.8 or later, whose archives hold raw tensors rather than "
                          f"pickles; this is torch {torch.__version__}. Export as onnx instead")
    module = model.module.eval()
    names = [s.name for s in model.inputs]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = _examples(model.inputs, 2, seed=0)
    meta = {**model_metadata(model, metadata, "float32"), "input_names": names, "output_names": model.outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the archive writer warns about weight grouping on CPU tensors
        try:
            program = torch.export.export(module, example, dynamic_shapes=_batch_dims(module, len(names), batch),
                                          strict=False)
            program.example_inputs = None  # else torch.save()d (a pickle) into the archive
            torch.export.save(program, str(path), extra_files={PT2_METADATA: json.dumps(meta)})
            if pickled := _pickled_entries(path):
                raise ExportError(f"the {model.kind}'s .pt2 archive would hold pickled data ({', '.join(pickled)}), "
                                  f"which gancore never writes; export it as ONNX instead")
            loaded = torch.export.load(str(path)).module()
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"torch.export failed for the {model.kind}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:300]}") from None
        parity = _torch_parity(module, loaded, model, "torch.export")
    return {"file": path.name, "max_abs_diff": parity, "tolerance": TOLERANCE}


def _check_destination(dest: Path, force: bool) -> None:
    """Refuse a destination that an export must not replace: ``--force`` swaps out an earlier export (a
    folder with a ``card.json``) or an empty folder, never a run folder or anything else."""
    parent = next((p for p in dest.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ExportError(f"cannot export into {dest}: {parent} is a file, not a folder; choose another --out")
    if not dest.exists():
        return
    replaceable = dest.is_dir() and (not any(dest.iterdir()) or (dest / "card.json").is_file())
    if not force:
        fix = "pass --force to replace it, or --out to choose another folder" if replaceable else (
            "it is not an earlier export, so choose another --out")
        raise ExportError(f"{dest} already exists and is not overwritten; {fix}")
    if not replaceable:
        raise ExportError(f"{dest} is not an earlier export (no card.json in it); --force replaces only an "
                          f"export folder, so nothing was changed. Choose another --out")
    if foreign := sorted(e.name for e in dest.iterdir() if not _export_file(e)):
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ExportError(f"{dest} holds {len(foreign)} {'entry' if len(foreign) == 1 else 'entries'} that no export "
                          f"writes ({shown}); --force would delete them with the folder, so nothing was changed. "
                          f"Move them out, or choose another --out")


def _export_file(entry: Path) -> bool:
    """What an export writes, and ``gan eval`` and ``gan sample`` of its models beside them: the card, model
    files, evaluation reports, sample grids (PNGs gancore wrote); also writes cut short, and Finder's notes."""
    name = entry.name
    if not entry.is_file() or entry.is_symlink():
        return False
    return (name in ("card.json", ".DS_Store") or name.endswith((*SUFFIX.values(), ".eval.json"))
            or TMP_BESIDE.fullmatch(name) is not None or (name.endswith(".png") and drawn_by_gancore(entry)))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _tidy(dest: Path) -> None:
    """Clear what an export into ``dest`` that was killed midway left beside it: its hidden temporary folder,
    and an earlier export set aside for a swap that never finished (put back if ``dest`` is missing). Only
    folders of processes that are gone are touched, so a concurrent export keeps its own."""
    if not dest.parent.is_dir():
        return
    for p in dest.parent.iterdir():
        for prefix in (f".tmp-{dest.name}-", f".old-{dest.name}-"):
            pid = p.name[len(prefix):]
            if not (p.name.startswith(prefix) and pid.isdigit()) or _alive(int(pid)):
                continue
            if prefix.startswith(".old-") and not dest.exists():
                os.rename(p, dest)
            else:
                shutil.rmtree(p, ignore_errors=True)


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            break  # not empty (another export landed there), or gone


STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a model's file stem: no dot, which would meet .fp16.onnx


def _bad_fields(m: ExportModel) -> str | None:
    """What is wrong with a plugin's ExportModel's fields, or None."""
    if not isinstance(m.module, nn.Module):
        return f"a module of type {type(m.module).__name__}, not a torch.nn.Module"
    if not isinstance(m.inputs, list | tuple) or not m.inputs or not all(isinstance(i, LatentSpec) for i in m.inputs):
        return f"inputs {m.inputs!r:.80}, not a list of gancore.components.LatentSpec"
    if not isinstance(m.outputs, list | tuple) or not m.outputs or not all(isinstance(o, str) for o in m.outputs):
        return f"outputs {m.outputs!r:.80}, not a list of output names"
    if not isinstance(m.kind, str) or not isinstance(m.metadata, dict):
        return "a kind that is not a str or metadata that is not a dict"
    return None


def check_extra(plugin: str, extra: Any, given: dict[str, tuple[str, str]]) -> dict[str, ExportModel]:
    """Plugin ``plugin``'s ``gan_export_extra`` answer, checked before anything is written (a bad one would fail
    deep in the export). ``given``: each stem named so far, by plugin; one may replace the core's ``generator``
    (gumbel-text exports token ids), but not a model another plugin named."""
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) and isinstance(v, ExportModel)
                                                 for k, v in extra.items()):
        raise ExportError(f"plugin {plugin!r}: gan_export_extra returned {type(extra).__name__} {extra!r:.80}, "
                          f"expected None or {{file stem: gancore.components.ExportModel}}; nothing was exported")
    for stem, m in extra.items():
        if why := _bad_fields(m):
            raise ExportError(f"plugin {plugin!r}: gan_export_extra's model {stem!r} has {why}; nothing was exported")
    core = {"generator": ("the core", "generator"), "card": ("the core", "card")}
    for stem in extra:
        key = stem.casefold()  # Card.json is card.json on a case-insensitive disk
        owner, as_named = given.get(key) or (core.get(key) if stem != "generator" else None) or (None, stem)
        if owner or not STEM.fullmatch(stem):
            case = f" as {as_named!r} (names that differ only in case meet on some disks)" if as_named != stem else ""
            why = (f"{owner} exports too{case}" if owner else
                   "is not a plain file stem (letters, digits, _ and -: a dot would meet a format's suffix)")
            raise ExportError(f"plugin {plugin!r}: gan_export_extra names a model {stem!r}, which {why}; nothing "
                              f"was exported")
        given[key] = (f"plugin {plugin!r}", stem)
    return dict(extra)


def export_run(run: str | Path, formats: Sequence[str] = ("onnx",), *, out: str | Path | None = None,
               force: bool = False, checkpoint: str | None = None, live: bool = False) -> Path:
    """Export run ``run`` into ``out`` (default ``exported/<run name>``); return that folder. ``live``: a run
    trained with ``train.ema`` is exported with its last step's weights rather than its networks' averages."""
    run = path_arg(run, "the run to export", ExportError)
    if isinstance(formats, str):
        formats = [formats]  # export_run(run, "onnx") means one format
    elif isinstance(formats, Iterable) and not isinstance(formats, Mapping):
        formats = list(formats)
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ExportError(f"formats are names such as ['onnx', 'torchscript'], got {formats!r}; choose from "
                          f"{', '.join(FORMATS)}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown export format {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}")
    if out is not None and not str(out).strip():  # most likely an unset shell variable: `--out "$DIR"`
        raise ExportError(f"--out is empty; name the folder to write, or leave --out off for {EXPORT_DIR}/<run>")
    dest = path_arg(out, "out", ExportError) if out is not None else EXPORT_DIR / run.resolve().name
    try:
        _tidy(dest)
    except OSError as e:
        raise ExportError(f"could not tidy {dest.parent} after an earlier export: {e.strerror or e}; choose "
                          f"another --out") from None
    _check_destination(dest, force)
    state = open_run(run, checkpoint=checkpoint, device="cpu", live=live)
    models = {"generator": generator_model(state)}
    given: dict[str, tuple[str, str]] = {}
    for plugin, extra in state.manager.call_each("gan_export_extra", state=state):
        models.update(check_extra(plugin, extra, given))
    averaged = averaged_nets(state.config["train"], live)
    common = {"plugin": state.config["plugin"], "gancore_version": __version__, "run": run.resolve().name,
              "step": state.step, "ema": state.config["train"]["ema"],
              "weights": "averaged" if averaged else "live", "averaged": averaged,
              "plugin_versions": {n: i.version for n, i in state.manager.info.items()}}

    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # deepest first, to remove on failure
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        card: dict[str, Any] = {**common, "models": {}}
        for stem, model in models.items():
            entry: dict[str, Any] = {"kind": model.kind, "inputs": [s.to_json() for s in model.inputs],
                                     "outputs": model.outputs, **model.metadata}
            if "onnx" in formats or "onnx-opt" in formats:  # the optimised graph is made from the fp32 file
                entry["onnx"] = export_onnx(model, tmp / f"{stem}{SUFFIX['onnx']}", common)
            if "onnx-opt" in formats:
                entry["onnx-opt"] = optimize_onnx(model, tmp / f"{stem}{SUFFIX['onnx']}",
                                                  tmp / f"{stem}{SUFFIX['onnx-opt']}")
            if "onnx-fp16" in formats:
                entry["onnx-fp16"] = export_onnx(model, tmp / f"{stem}{SUFFIX['onnx-fp16']}", common, fp16=True)
            if "pt2" in formats:
                entry["pt2"] = export_pt2(model, tmp / f"{stem}{SUFFIX['pt2']}", common)
            if "torchscript" in formats:
                entry["torchscript"] = export_torchscript(model, tmp / f"{stem}{SUFFIX['torchscript']}")
            card["models"][stem] = entry
        (tmp / "card.json").write_text(json_text(card, indent=2) + "\n")
        swap_into_place(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise ExportError(f"could not write the export into {dest.parent}: {e.strerror or e}; nothing was "
                          f"exported. Free disk space or choose a writable --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    return dest
