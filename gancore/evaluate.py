"""``gan eval``: run every registered metric that fits the run, print a table, write JSON and curves."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gancore.averaging import averaged, averaged_nets
from gancore.components import LatentSpec, Metric
from gancore.errors import GanError, PluginError, failure, path_arg
from gancore.fsutil import write_json_atomic
from gancore.plugins import get_manager
from gancore.sampling import eval_mode, latent_batches
from gancore.state import TrainState, check_same_data, data_place, load_data


class OnnxSource:
    """An exported generator seen as a metric source: its metadata stands in for the run."""

    def __init__(self, path: str | Path, device: str = "cpu", data_dir: str = "") -> None:
        from gancore.deploy import OnnxModel

        self.model = OnnxModel(path, device=device)
        meta = self.model.meta
        if "data" not in meta:
            raise GanError(f"{str(path)!r} has no data description in its metadata; re-export it with this gancore")
        self.path = Path(path)
        self.data_info: dict[str, Any] = meta["data"]
        # data_dir: where the metrics read real images (the model does not know where its run read them)
        self.config = {"plugin": meta.get("plugin", "?"), "data": {"name": meta.get("data_name", "?"), "dir": data_dir}}
        self.step = int(meta.get("step", 0))

    def generate(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` samples from the latents a run's :meth:`TrainState.generate` draws at ``seed`` on the CPU, so an
        export is scored on the latents of its run's CPU evaluation (a GPU's generator draws others)."""
        specs = [LatentSpec.from_json(s) for s in self.model.inputs]
        return torch.cat([torch.from_numpy(self.model.run({k: v.numpy() for k, v in latent.items()})[0])
                          for latent in latent_batches(specs, n, seed, torch.device("cpu"))])


class PlainMetric(Metric):
    """A metric registered as a bare callable ``metric(run) -> dict[str, float]``: it fits every run."""

    def __init__(self, fn: Callable[[Any], dict[str, float]]) -> None:
        self.fn = fn

    def __call__(self, state: Any) -> dict[str, float]:
        return self.fn(state)


def _fits(reg: Any, name: str, state: TrainState | OnnxSource) -> tuple[Metric | None, str | None]:
    """Build metric ``name`` and ask whether it fits ``state``: ``(metric, None)`` if it fits and can run here,
    ``(None, None)`` if it does not fit, ``(None, why)`` if it fits but cannot run, or its plugin raised."""
    entry = reg.get(name)
    try:
        try:
            metric = reg.build(name, {}, where="metric")
        except PluginError as e:  # the registry's words name the metric; here the builder's own error is enough
            raise e.__cause__ or e from None
        if not isinstance(metric, Metric):
            if not callable(metric):
                return None, (f"its builder returned a {type(metric).__name__}, not a gancore.components.Metric "
                              f"or a callable (plugin {entry.plugin!r})")
            metric = PlainMetric(metric)
        if not metric.applies(state):
            return None, None
        why = metric.unavailable(state)
    except (Exception, SystemExit) as e:  # a bug in a plugin's metric must not stop evaluation, nor training
        return None, f"plugin {entry.plugin!r} raised {failure(e)} while setting it up"
    return (metric, None) if why is None else (None, why)


def applicable(state: TrainState | OnnxSource, names: list[str] | None = None,
               skipped: dict[str, str] | None = None) -> dict[str, Metric]:
    """Metrics that fit the run and can run here: those named, or every registered one whose ``applies`` says
    so. One that fits but cannot run (``unavailable``, or its plugin raised while building or asking it) is an
    error when named, else noted in ``skipped``."""
    reg = (getattr(state, "manager", None) or get_manager()).registries.metrics
    names = [names] if isinstance(names, str) else names  # metrics="modes" from Python means that one
    chosen = names if names else reg.list()
    out: dict[str, Metric] = {}
    for name in chosen:
        metric, why = _fits(reg, name, state)
        if metric is not None:
            out[name] = metric
        elif why is None:
            if names:
                model = isinstance(state, OnnxSource)
                what = "this exported model" if model else "this run"
                hint = ("; it reads the run's other networks, so give gan eval the run folder" if model and
                        reg.get(name).plugin == state.config["plugin"] else "")
                raise GanError(f"metric {name!r} does not fit {what} (plugin {state.config['plugin']!r}, "
                               f"data {state.config['data']['name']!r}){hint}")
        elif names:
            raise GanError(f"metric {name!r} cannot run here: {why}")
        elif skipped is not None:
            skipped[name] = why
    return out


def _checked(figures: Any) -> dict[str, float]:
    """A metric's figures, refused unless they are ``{name: number}`` (what reports, curves and logs hold)."""
    if not isinstance(figures, Mapping):
        raise TypeError(f"the metric returned {type(figures).__name__}, not a dict of figures")
    bad = [k for k, v in figures.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise TypeError(f"the metric's figure {bad[0]!r} is {figures[bad[0]]!r}, not a number")
    return {str(k): float(v) for k, v in figures.items()}


def evaluate(state: TrainState | OnnxSource, metrics: dict[str, Metric] | None = None,
             failed: dict[str, str] | None = None) -> dict[str, float]:
    """``{metric/figure: value}`` for the run's current weights (its averaged generator, with ``train.ema``);
    networks are left as they were found.

    ``failed``: where given, a metric that raises is recorded there (name: why) and the others still run, so one
    broken metric costs neither the other scores nor a training run; else its error propagates."""
    metrics = applicable(state) if metrics is None else metrics
    results: dict[str, float] = {}
    with averaged(state):
        nets = state.nets.named().values() if hasattr(state, "nets") else ()
        with eval_mode(*nets):
            for name, metric in metrics.items():
                try:
                    figures = _checked(metric(state))
                except (Exception, SystemExit) as e:  # recorded for the caller, who reports it
                    if failed is None:
                        raise
                    failed[name] = failure(e)
                    continue
                for key, value in figures.items():
                    results[f"{name}/{key}"] = value
    return results


def _names(metrics: Collection[str]) -> str:
    return ("metric " if len(metrics) == 1 else "metrics ") + ", ".join(repr(m) for m in metrics)


def _earlier(path: Path, scored: Collection[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The figures and failures an earlier report at ``path`` holds for metrics other than ``scored`` (kept: a
    ``gan eval --metric M`` adds M's figures to the step's report instead of dropping the others')."""
    try:
        old = json.loads(path.read_text())
        results, failed = dict(old.get("results") or {}), dict(old.get("failed") or {})
    except FileNotFoundError:
        return {}, {}  # none yet
    except (OSError, ValueError, AttributeError, TypeError) as e:
        print(f"gancore: warning: the earlier report {path} cannot be read ({type(e).__name__}: {e}); it is "
              f"replaced, and holds only the figures scored now", file=sys.stderr)
        return {}, {}
    return ({k: v for k, v in results.items() if k.split("/", 1)[0] not in scored},
            {k: v for k, v in failed.items() if k not in scored})


def _check_held_out(state: TrainState, run: Path) -> None:
    """Refuse real held-out data whose classes or vocabulary differ from the run's (another folder given with
    --data-dir, or the data changed on disk): the metrics would score labels or tokens that mean other things."""
    try:
        test = load_data(state.manager, state.config, train=False)
    except GanError:  # none held out, or not readable here: each metric that needs it says so
        return
    now = test.describe()
    if now.get("classes") is None:  # an unlabelled held-out split: images to compare with, no labels to mismatch
        now["classes"] = state.data_info.get("classes")
    check_same_data(state.data_info, now, f"the held-out data ({data_place(state.config)})",
                    f"Give --data-dir the data {run} was trained on")


def write_report(state: TrainState | OnnxSource, results: dict[str, float], *, live: bool = False,
                 failed: dict[str, str] | None = None, scored: Collection[str] | None = None) -> Path:
    """``RUN/eval/step-N.json`` for a run (``step-N-live.json`` for the last step's weights of a run trained with
    ``train.ema``, so neither reading replaces the other), ``<model>.eval.json`` beside an exported model.
    ``failed`` (metric: why) is recorded beside the results, so a partial report says what it lacks. With
    ``scored`` (the metrics named, as ``gan eval --metric M``), an earlier report of the same weights keeps the
    figures of the other metrics; without, the report is replaced whole, so no figure outlives a full scoring."""
    report: dict[str, Any] = {"step": state.step}
    if isinstance(state, OnnxSource):
        path = state.path.with_name(f"{state.path.stem}.eval.json")
        report["provider"] = state.model.provider  # the one the session really used, not the one asked for
    else:
        assert state.run_dir is not None
        suffix = "-live" if live and state.config["train"]["ema"] else ""
        path = state.run_dir / "eval" / f"step-{state.step:07d}{suffix}.json"
        report["weights"] = "averaged" if averaged_nets(state.config["train"], live) else "live"
    kept, kept_failed = ({}, {}) if scored is None else _earlier(path, set(scored) | set(failed or {}))
    failed = {**kept_failed, **(failed or {})}
    if failed:
        report["failed"] = failed
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {**report, "results": {**kept, **results}})
    except OSError as e:
        raise GanError(f"could not write {path}: {e.strerror or e}") from None
    return path


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else str(v)


def table(results: dict[str, Any]) -> str:
    """One row per figure; a figure's ``*_ceiling`` (the same measure on real data) goes in its own column."""
    if not results:
        return "no registered metric fits this run"
    shown = [k for k in results if not (k.endswith("_ceiling") and k[: -len("_ceiling")] in results)]
    width = max(len(k) for k in shown)
    rows = [f"{'metric':<{width}}  {'value':>10}  {'real data':>10}"]
    for k in shown:
        ceiling = results.get(f"{k}_ceiling")
        rows.append(f"{k:<{width}}  {_fmt(results[k]):>10}  {_fmt(ceiling) if ceiling is not None else '':>10}")
    return "\n".join(rows)


@dataclass
class EvalResult:
    """What :func:`evaluate_run` measured, and where it wrote it."""

    results: dict[str, float]
    step: int
    backend: str  # "PyTorch on cpu", "onnxruntime on CUDAExecutionProvider": where the samples were drawn
    report: Path
    curves: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # metrics that fit but cannot run here, and why
    failed: dict[str, str] = field(default_factory=dict)  # metrics that raised while scoring, and why


def evaluate_run(target: str | Path, *, metrics: list[str] | None = None, checkpoint: str | None = None,
                 device: str | None = None, data_dir: str | None = None, live: bool = False,
                 note: Callable[[str], None] | None = None) -> EvalResult:
    """Score a run folder or an exported ``.onnx`` generator with every registered metric that fits (or ``metrics``),
    as ``gan eval`` does: writes the JSON report, and for a run its ``curves.png``.

    ``data_dir``: where the real images are read (default: the run's own ``data.dir``; for a model, the default
    places). ``note`` gets a line for each metric skipped because it cannot run here, before scoring starts. A
    metric that raises while scoring is left out and named in ``failed`` (and the report) while the others are
    kept; if every one fails, :class:`GanError` says why."""
    from gancore.plots import curves
    from gancore.runs import open_run
    from gancore.sampling import is_model, refuse_run_options_for_model

    target = path_arg(target, "the run or model to evaluate")
    refuse_run_options_for_model(target, live, checkpoint)
    if data_dir and not Path(data_dir).expanduser().is_dir():  # checked even where no chosen metric reads data
        raise GanError(f"--data-dir {data_dir!r} does not exist or is not a folder; give the folder holding the "
                       f"dataset's files")
    state: TrainState | OnnxSource
    if is_model(target):
        state = OnnxSource(target, device or "auto", data_dir or "")
        backend = f"onnxruntime on {state.model.provider}"
    else:
        state = open_run(target, checkpoint=checkpoint, device=device, live=live)
        saved = state.config["data"].get("dir")
        if data_dir is not None:  # the run's data moved, or this machine keeps it elsewhere
            state.config["data"]["dir"] = data_dir
        elif saved and not Path(saved).expanduser().exists():
            raise GanError(f"run {target} read its data from {saved!r} (data.dir in its config.json), which is not "
                           f"there now; pass --data-dir with the folder it moved to")
        _check_held_out(state, target)
        backend = f"PyTorch on {state.device}"
    skipped: dict[str, str] = {}
    chosen = applicable(state, metrics, skipped)
    for name, why in skipped.items():
        if note:
            note(f"{name}: skipped; {why}")
    if not chosen:
        raise GanError(f"no registered metric fits run {target} (data {state.data_info.get('dataset', '?')!r}); "
                       f"`gan plugins` lists the metrics")
    failed: dict[str, str] = {}
    results = evaluate(state, chosen, failed)
    if failed and not results:  # nothing to report: an error, and no report that would read as a score
        raise GanError("; ".join(f"metric {name!r} failed: {why}" for name, why in failed.items()))
    if not results and not failed:
        raise GanError(f"{_names(chosen)} returned no figures for run {target}, so no report was written "
                       f"(an earlier one is kept); a metric reports a dict of numbers")
    report = write_report(state, results, live=live, failed=failed, scored=chosen if metrics else None)
    try:
        pic = None if isinstance(state, OnnxSource) else curves(target)
    except OSError as e:
        raise GanError(f"could not write {target / 'curves.png'}: {e.strerror or e}; the scores are saved in "
                       f"{report}. Free disk space, then run gan eval again for the picture") from None
    return EvalResult(results, state.step, backend, report, pic, skipped, failed)
