"""Run an exported gancore model with onnxruntime and numpy alone (no torch, no training code).

Everything needed to feed the model is in its ONNX metadata (``metadata_props``): each input's name,
shape, dtype and distribution, the output's layout and value range.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gancore.errors import ExportError

META_PREFIX = "gancore."


def _has_driver() -> bool:
    """Whether the NVIDIA driver library loads: without it onnxruntime-gpu can only run on CPU."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def session(path: str | Path, device: str = "auto") -> Any:
    """An onnxruntime session on CUDA when it really works here, else on CPU."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers() and _has_driver():
        providers.insert(0, "CUDAExecutionProvider")
    # A provider that fails to start is logged in red as an error; we report the provider really used instead.
    ort.set_default_logger_severity(4)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:
        raise ExportError(f"{str(path)!r} is not a loadable ONNX model ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]})") from None
    if device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise ExportError("--device cuda asked for, but onnxruntime's CUDA provider did not start here")
    return sess


def read_metadata(sess: Any) -> dict[str, Any]:
    raw = sess.get_modelmeta().custom_metadata_map
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if k.startswith(META_PREFIX):
            try:
                meta[k[len(META_PREFIX):]] = json.loads(v)
            except json.JSONDecodeError:
                meta[k[len(META_PREFIX):]] = v
    return meta


class OnnxModel:
    """A gancore ONNX export: inputs drawn or checked from its metadata."""

    def __init__(self, path: str | Path, device: str = "auto", kind: str | None = "generator") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"model file {str(self.path)!r} does not exist")
        self.session = session(self.path, device)
        self.meta = read_metadata(self.session)
        if "kind" not in self.meta or "inputs" not in self.meta:
            raise ExportError(f"{str(self.path)!r} is an ONNX model but not a gancore export "
                              f"(no gancore.* metadata); export one with `gan export RUN`")
        if kind and self.meta["kind"] != kind:
            raise ExportError(f"{str(self.path)!r} is a gancore {self.meta['kind']}, not a {kind}")
        self.inputs: list[dict[str, Any]] = self.meta["inputs"]
        names = [i.name for i in self.session.get_inputs()]
        if names != [i["name"] for i in self.inputs]:
            raise ExportError(f"{str(self.path)!r}: graph inputs {names} do not match its metadata; "
                              f"the file was altered after export")

    @property
    def provider(self) -> str:
        """The execution provider the session really uses."""
        return self.session.get_providers()[0]

    def draw(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Latent inputs for ``n`` samples, from the distributions in the metadata."""
        rng = np.random.default_rng(seed)
        feeds = {}
        for spec in self.inputs:
            shape = (n, *spec["shape"])
            dist = spec["distribution"]
            if dist == "normal":
                feeds[spec["name"]] = rng.standard_normal(shape, dtype=np.float32)
            elif dist == "uniform":
                feeds[spec["name"]] = rng.uniform(spec["low"], spec["high"], shape).astype(np.float32)
            elif dist == "categorical":
                feeds[spec["name"]] = rng.integers(0, spec["classes"], shape, dtype=np.int64)
            else:
                raise ExportError(f"input {spec['name']!r} has an unknown distribution {dist!r}")
        return feeds

    def check(self, feeds: dict[str, np.ndarray]) -> None:
        """Refuse inputs that do not fit the metadata: a wrong name, shape or dtype, a category out of range."""
        want = {s["name"] for s in self.inputs}
        if set(feeds) != want:
            raise ExportError(f"inputs must be exactly {sorted(want)}, got {sorted(feeds)}")
        for spec in self.inputs:
            v = feeds[spec["name"]]
            if v.ndim != 1 + len(spec["shape"]) or list(v.shape[1:]) != list(spec["shape"]):
                raise ExportError(f"input {spec['name']!r} must have shape (batch, "
                                  f"{', '.join(map(str, spec['shape']))}), got {v.shape}")
            if str(v.dtype) != spec["dtype"]:
                raise ExportError(f"input {spec['name']!r} must be {spec['dtype']}, got {v.dtype}")
            if spec["distribution"] == "categorical" and v.size and (v.min() < 0 or v.max() >= spec["classes"]):
                raise ExportError(f"input {spec['name']!r} holds a category outside [0, {spec['classes']})")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.check(feeds)
        return self.session.run(None, feeds)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        return self.run(self.draw(n, seed))[0]
