"""Pictures of a run: scatter plots of 2-D samples over the data's modes, and loss/metric curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from gancore.fsutil import replacing

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, ".png") as tmp:  # matplotlib reads the format from the suffix
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
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


def curves(run_dir: Path, path: Path | None = None) -> Path | None:
    """Loss terms and evaluation metrics against the step, from ``metrics.jsonl``."""
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return None
    lines = []
    for raw in log.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    losses = sorted({k for x in lines if "event" not in x and "eval" not in x for k in x} - {"step", "time_s",
                                                                                         "images_per_s"})
    evals = sorted({k for x in lines if "eval" in x for k in x["eval"]})
    panels = [("loss", losses, [x for x in lines if "event" not in x and "eval" not in x])]
    panels += [(k, [k], [{"step": x["step"], k: x["eval"][k]} for x in lines if k in x.get("eval", {})]) for k in evals]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 2.2 * len(panels)), squeeze=False)
    for ax, (title, keys, rows) in zip(axes[:, 0], panels, strict=True):
        for k in keys:
            pts = [(x["step"], x[k]) for x in rows if k in x]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, lw=1)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    return _save(fig, path or run_dir / "curves.png")
