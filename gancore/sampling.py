"""``gan sample``: draw from a run's checkpoint with PyTorch, or from an exported ONNX model with onnxruntime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gancore.errors import ExportError
from gancore.images import save_grid


@contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Modules in eval mode without autograd for the block, then each back in the mode it was in."""
    import torch

    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, w in zip(modules, was, strict=True):
            m.train(w)


def generate(state: Any, n: int, seed: int = 0, chunk: int = 1024) -> Any:
    """``n`` samples from the run's generator (eval mode, no grad), drawn in chunks with a seeded RNG."""
    import torch

    from gancore.components import draw

    gen = torch.Generator(device=state.device).manual_seed(seed)
    out = []
    with eval_mode(state.nets.generator):
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            latent = {s.name: draw(s, m, gen, state.device) for s in state.latent_specs}
            out.append(state.nets.generator(**latent).float())
    return torch.cat(out)


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
        from gancore.runs import open_run

        state = open_run(target, checkpoint=checkpoint, device=None if device == "auto" else device)
        x = generate(state, n, seed).cpu().numpy()
        value_range = tuple(state.data_info["value_range"])
        kind = state.data_info.get("kind", "image")
        res = SampleResult(x, "pytorch", str(state.device), None)
    if out is not None:
        if kind != "image" or res.samples.ndim != 4:
            raise ExportError("this model does not produce images; a PNG grid needs image output")
        try:
            res.out = save_grid(res.samples, out, value_range)  # type: ignore[arg-type]
        except (OSError, ValueError) as e:
            raise ExportError(f"could not write {str(out)!r}: {getattr(e, 'strerror', None) or e}") from None
    return res
