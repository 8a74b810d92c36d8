"""``gan eval``: run every registered metric that fits the run, print a table, write JSON and curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gancore.components import Metric
from gancore.errors import GanError
from gancore.state import TrainState


def applicable(state: TrainState, names: list[str] | None = None) -> dict[str, Metric]:
    """Metrics that fit the run: those named, or every registered one whose ``applies`` says so."""
    reg = state.manager.registries.metrics
    chosen = names if names else reg.list()
    out: dict[str, Metric] = {}
    for name in chosen:
        metric = reg.build(name, {}, where="metric")
        if metric.applies(state):
            out[name] = metric
        elif names:
            raise GanError(f"metric {name!r} does not fit this run (plugin {state.config['plugin']!r}, "
                           f"data {state.config['data']['name']!r})")
    return out


def evaluate(state: TrainState, metrics: dict[str, Metric] | None = None) -> dict[str, float]:
    """``{metric/figure: value}`` for the run's current weights; networks are left as they were found."""
    metrics = applicable(state) if metrics is None else metrics
    modes = {role: m.training for role, m in state.nets.named().items()}
    for m in state.nets.named().values():
        m.eval()
    results: dict[str, float] = {}
    try:
        for name, metric in metrics.items():
            for key, value in metric(state).items():
                results[f"{name}/{key}"] = value
    finally:
        for role, m in state.nets.named().items():
            m.train(modes[role])
    return results


def write_report(state: TrainState, results: dict[str, float]) -> Path:
    assert state.run_dir is not None
    path = state.run_dir / "eval" / f"step-{state.step:07d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": state.step, "results": results}, indent=2) + "\n")
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
