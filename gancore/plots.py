"""Pictures of a run: scatter plots of 2-D samples over the data's modes, and loss/metric curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

from gancore.fsutil import replacing
from gancore.images import PNG_SOURCE

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, ".png") as tmp:  # matplotlib reads the format from the suffix
            fig.savefig(tmp, dpi=100, bbox_inches="tight", metadata={"Source": PNG_SOURCE})
    finally:
        plt.close(fig)
    return path


def scatter(points: Any, path: Path, *, modes: list[list[float]] | None = None, sigma: float | None = None,
            lim: float | None = None, title: str = "") -> Path:
    """Samples as dots, the data's modes as red crosses with their 3-sigma circles."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color="tab:blue", label="samples")
    if modes:
        mx = [m[0] for m in modes]
        my = [m[1] for m in modes]
        ax.scatter(mx, my, marker="x", color="tab:red", s=30, label="modes")
        if sigma:
            for x, y in zip(mx, my, strict=True):
                ax.add_patch(plt.Circle((x, y), 3 * sigma, fill=False, color="tab:red", lw=0.5))
    if lim:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


REAL = "real data"  # the series of a figure's ``*_ceiling``, the same measure on real data


def _number(v: Any) -> float | None:
    """A logged value as a float to draw: logs write non-finite ones as "inf", "-inf" or "nan" (strict JSON);
    those draw as gaps; anything else that is not a number is not drawn."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return math.nan if v in ("inf", "-inf", "nan") else None


def _reports(run_dir: Path) -> list[dict[str, Any]]:
    """``gan eval``'s reports (``eval/step-N.json``) as log lines, ``(live)`` marking the last step's weights."""
    out = []
    for path in sorted((run_dir / "eval").glob("step-*.json")):
        try:
            report = json.loads(path.read_text())
            step, results = int(report["step"]), report["results"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report from elsewhere, or one being written: the curves go on without it
        mark = " (live)" if path.stem.endswith("-live") else ""
        out.append({"step": step, "eval": {f"{k}{mark}": v for k, v in results.items()}})
    return out


def panels(run_dir: Path) -> list[tuple[str, dict[str, list[tuple[int, float]]]]]:
    """What ``curves`` draws: a loss panel, then one per metric, each ``(title, {series: [(step, value)]})``, from
    training's ``metrics.jsonl`` and the reports of ``gan eval``."""
    lines = []
    log = run_dir / "metrics.jsonl"
    for raw in log.read_text().splitlines() if log.exists() else []:
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    train_lines = [x for x in lines if "event" not in x and "eval" not in x]
    losses: dict[str, list[tuple[int, float]]] = {}
    for x in train_lines:
        for k, v in x.items():
            if k not in ("step", "time_s", "images_per_s") and (y := _number(v)) is not None:
                losses.setdefault(k, []).append((x["step"], y))
    metrics: dict[str, dict[int, float]] = {}
    for x in [x for x in lines if "eval" in x] + _reports(run_dir):
        for k, v in x["eval"].items():
            if (y := _number(v)) is not None:
                metrics.setdefault(k, {})[x["step"]] = y  # a report at a step training also scored replaces it
    out = [("loss", dict(sorted(losses.items())))] if losses else []
    for k in sorted(metrics):
        name, sep, mark = k.partition(" (")  # "q/frechet (live)": name "q/frechet", mark "live)"
        if name.endswith("_ceiling") and f"{name.removesuffix('_ceiling')}{sep}{mark}" in metrics:
            continue  # drawn in its figure's panel
        series = {k: sorted(metrics[k].items())}
        ceiling = metrics.get(f"{name}_ceiling{sep}{mark}")
        if ceiling:
            series[REAL] = sorted(ceiling.items())
        out.append((k, series))
    return out


def curves(run_dir: Path, path: Path | None = None) -> Path | None:
    """Loss terms and evaluation metrics against the step, from ``metrics.jsonl`` and ``eval/``; None if neither
    has anything yet."""
    drawn = panels(run_dir)
    if not drawn:
        return None
    fig, axes = plt.subplots(len(drawn), 1, figsize=(6, 2.2 * len(drawn)), squeeze=False)
    for ax, (title, series) in zip(axes[:, 0], drawn, strict=True):
        for k, pts in series.items():
            few = title != "loss" and k != REAL and len(pts) < 30  # evaluations are sparse: show each one
            style = {"ls": "--", "color": "grey"} if k == REAL else {"marker": "o" if few else None, "ms": 3}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, lw=1, **style)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()  # else each panel's title runs into the tick labels above it
    return _save(fig, path or run_dir / "curves.png")
