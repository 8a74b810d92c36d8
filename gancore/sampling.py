"""``gan sample``: draw from a run's checkpoint with PyTorch, or from an exported ONNX model with onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gancore.errors import ExportError
from gancore.images import save_grid


@dataclass
class SampleResult:
    samples: np.ndarray
    backend: str  # "pytorch" or "onnxruntime"
    device: str  # torch device, or the onnxruntime execution provider really used
    out: Path | None


def sample(target: str | Path, *, n: int = 64, out: str | Path | None = None, seed: int = 0,
           device: str = "auto", checkpoint: str | None = None) -> SampleResult:
    """Sample ``n`` items from a run folder or a ``.onnx`` file; write a PNG grid to ``out`` if given."""
    if n < 1:
        raise ExportError(f"-n must be >= 1, got {n}")
    target = Path(target)
    if target.suffix == ".onnx":
        from gancore.deploy import OnnxModel

        model = OnnxModel(target, device=device)
        x = model.sample(n, seed)
        value_range = tuple(model.meta.get("output", {}).get("value_range", (-1.0, 1.0)))
        kind = "image" if model.meta.get("output", {}).get("layout") == "NCHW" else "other"
        res = SampleResult(x, "onnxruntime", model.provider, None)
    else:
        import torch

        from gancore.components import draw
        from gancore.runs import open_run

        state = open_run(target, checkpoint=checkpoint, device=None if device == "auto" else device)
        gen = torch.Generator(device=state.device).manual_seed(seed)
        latent = {s.name: draw(s, n, gen, state.device) for s in state.latent_specs}
        with torch.no_grad():
            x = state.nets.generator(**latent).float().cpu().numpy()
        value_range = tuple(state.data_info["value_range"])
        kind = state.data_info.get("kind", "image")
        res = SampleResult(x, "pytorch", str(state.device), None)
    if out is not None:
        if kind != "image" or res.samples.ndim != 4:
            raise ExportError("this model does not produce images; a PNG grid needs image output")
        res.out = save_grid(res.samples, out, value_range)  # type: ignore[arg-type]
    return res
