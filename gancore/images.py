"""Sample grids as PNG, written atomically; 2-D samples as scatter plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from gancore.fsutil import replacing

PNG_SOURCE = "gancore"  # the PNG "Source" text of every picture gancore draws: how --force knows its own grids


def drawn_by_gancore(path: Path) -> bool:
    """Whether ``path`` is a PNG that gancore wrote (its "Source" text chunk says so)."""
    try:
        with Image.open(path) as im:
            return im.format == "PNG" and im.info.get("Source") == PNG_SOURCE
    except (OSError, ValueError, SyntaxError):
        return False


def grid_array(images: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0), nrow: int | None = None,
               pad: int = 2) -> np.ndarray:
    """N x C x H x W floats in ``value_range`` -> one H' x W' (x 3) uint8 grid, 2-pixel white gutters."""
    if images.ndim != 4:
        raise ValueError(f"expected images N x C x H x W, got shape {images.shape}")
    n, c, h, w = images.shape
    lo, hi = value_range
    x = np.clip((images.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    x = (x * 255.0 + 0.5).astype(np.uint8)
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    out = np.full((pad + ncol * (h + pad), pad + nrow * (w + pad), c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        out[y0:y0 + h, x0:x0 + w] = x[i].transpose(1, 2, 0)
    return out[:, :, 0] if c == 1 else out


def save_grid(images: np.ndarray, path: str | Path, value_range: tuple[float, float] = (-1.0, 1.0),
              nrow: int | None = None) -> Path:
    """Write a grid PNG; the file appears only once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = grid_array(images, value_range, nrow)
    with replacing(path) as tmp:
        info = PngImagePlugin.PngInfo()
        info.add_text("Source", PNG_SOURCE)
        Image.fromarray(arr).save(tmp, format="PNG", pnginfo=info)
    return path


def save_picture(samples: np.ndarray, path: str | Path, info: dict[str, Any], *, title: str = "",
                 nrow: int | None = None) -> Path:
    """Samples as a PNG: a scatter plot over the data's modes for 2-D points (``info["kind"] == "points"``), else
    a grid of images. ``info`` is a run's data description (``data_info``, or an export's ``data`` metadata)."""
    if info.get("kind") == "points":
        from gancore.plots import scatter  # matplotlib, only where a scatter plot is drawn

        return scatter(samples, Path(path), modes=info.get("modes"), sigma=info.get("sigma"),
                       lim=info["value_range"][1], title=title)
    return save_grid(samples, path, tuple(info["value_range"]), nrow=nrow)
