"""Run an exported gancore model with onnxruntime and numpy alone (no torch, no training code).

Everything needed to feed the model is in its ONNX metadata (``metadata_props``): each input's name,
shape, dtype and distribution, the output's layout and value range.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gancore.config import check_seed, whole
from gancore.errors import ExportError

META_PREFIX = "gancore."
MAX_BATCH = 65536  # the largest batch an export admits (its dynamic batch dimension's bound)


def _has_driver() -> bool:
    """Whether the NVIDIA driver library loads: without it onnxruntime-gpu can only run on CPU."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def cuda_index(device: str) -> int | None:
    """The GPU an ONNX session's ``device`` names: None for auto or cpu, 0 for cuda, N for cuda:N."""
    if device in ("auto", "cpu"):
        return None
    if device == "cuda":
        return 0
    index = device.removeprefix("cuda:")
    if index != device and index.isascii() and index.isdigit():
        return int(index)
    raise ExportError(f"--device {device!r} for an ONNX model: choose auto, cpu, cuda or cuda:N (N a GPU index)")


def session(path: str | Path, device: str = "auto") -> Any:
    """An onnxruntime session on CUDA when it really works here, else on CPU; ``cuda`` or ``cuda:N`` insist on
    that GPU, ``auto`` takes GPU 0 when it starts."""
    import onnxruntime as ort

    gpu = cuda_index(device)
    providers: list[Any] = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers() and _has_driver():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu or 0}))
    # A provider that fails to start is logged in red as an error; we report the provider really used instead.
    ort.set_default_logger_severity(4)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        # no fallback of onnxruntime's own: it prints a banner to stdout and drops the cause; we retry below
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers, enable_fallback=0)
    except Exception as e:
        if len(providers) == 1:
            raise ExportError(f"{str(path)!r} is not a loadable ONNX model ({_first_line(e)})") from None
        # the model, or the GPU? The CPU alone tells them apart; auto then runs there
        cpu = session(path, "cpu")
        if gpu is None:
            return cpu
        raise ExportError(f"onnxruntime's CUDA provider did not start on GPU {gpu} ({_first_line(e)}); "
                          f"--device cpu runs the model on the CPU") from None
    if gpu is not None and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise ExportError(f"--device {device} asked for, but onnxruntime's CUDA provider did not start here"
                          + (f" on GPU {gpu}" if gpu else ""))
    return sess


DISTRIBUTIONS = {"normal": "float32", "uniform": "float32", "categorical": "int64"}


def class_limits(spec: dict[str, Any]) -> Any:
    """A categorical input's exclusive upper bound: its ``classes``, or one per column from ``categories``."""
    return np.array(spec["categories"]) if "categories" in spec else spec["classes"]


def draw_input(spec: dict[str, Any], rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values of ``shape`` for one input, from the distribution its (checked) spec names."""
    dist = spec["distribution"]
    if dist == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if dist == "uniform":
        return rng.uniform(spec["low"], spec["high"], shape).astype(np.float32)
    if dist == "categorical":
        return rng.integers(0, class_limits(spec), shape, dtype=np.int64)
    raise ExportError(f"input {spec['name']!r} has an unknown distribution {dist!r}")


def draw_latent(specs: list[dict[str, Any]], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Latent inputs for ``n`` samples from input specs (JSON, as in the metadata), drawn with numpy from ``seed``:
    a run and its export draw the same ones, so ``gan sample`` gives one grid for both at a seed."""
    rng = np.random.default_rng(check_seed(seed))
    return {spec["name"]: draw_input(spec, rng, (n, *spec["shape"])) for spec in specs}


def parse_metadata(raw: dict[str, str], where: str = "model") -> dict[str, Any]:
    """gancore's ``metadata_props`` -> dict, checking every input spec; ExportError on anything malformed."""
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if k.startswith(META_PREFIX):
            try:
                meta[k[len(META_PREFIX):]] = json.loads(v)
            except (json.JSONDecodeError, RecursionError):
                raise ExportError(f"{where}: metadata {k!r} is not valid JSON") from None
    if "kind" not in meta or "inputs" not in meta:
        raise ExportError(f"{where} is an ONNX model but not a gancore export (no gancore.* metadata); "
                          f"export one with `gan export RUN`")
    if not isinstance(meta["kind"], str):
        raise ExportError(f"{where}: metadata gancore.kind must be a string")
    inputs = meta["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise ExportError(f"{where}: metadata gancore.inputs must be a non-empty list of input specs")
    for spec in inputs:
        _check_spec(spec, where)
    out = meta.get("output")
    if out is not None and not (isinstance(out, dict) and _range_ok(out.get("value_range"))):
        raise ExportError(f"{where}: metadata gancore.output must hold a value_range [low, high]")
    return meta


def _range_ok(r: Any) -> bool:
    return (isinstance(r, list) and len(r) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                         for x in r) and r[0] < r[1])


def _check_spec(spec: Any, where: str) -> None:
    bad = f"{where}: malformed input spec {str(spec)[:200]}"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ExportError(f"{bad} (needs a name)")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 2**20
                                              for d in shape):
        raise ExportError(f"{bad} (shape must be a list of positive sizes)")
    dist = spec.get("distribution")
    if dist not in DISTRIBUTIONS or spec.get("dtype") != DISTRIBUTIONS[dist]:
        raise ExportError(f"{bad} (distribution must be normal or uniform with float32, or categorical with int64)")
    if dist == "uniform" and not _range_ok([spec.get("low"), spec.get("high")]):
        raise ExportError(f"{bad} (uniform needs numbers low < high)")
    if not isinstance(spec.get("bounded", False), bool) or (spec.get("bounded") and dist != "uniform"):
        raise ExportError(f"{bad} (bounded must be true or false, and only on a uniform input)")
    if dist == "categorical" and not (isinstance(spec.get("classes"), int) and not isinstance(spec["classes"], bool)
                                      and spec["classes"] >= 1):
        raise ExportError(f"{bad} (categorical needs classes >= 1)")
    cats = spec.get("categories")
    ints = isinstance(cats, list) and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in cats)
    if "categories" in spec and not (dist == "categorical" and ints and len(shape) == 1 and len(cats) == shape[0]
                                     and max(cats) == spec["classes"]):
        raise ExportError(f"{bad} (categories must list one class count >= 1 per column, classes their maximum)")


def _first(mask: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first true element of ``mask``, or None."""
    bad = np.argwhere(mask)
    return tuple(int(i) for i in bad[0]) if len(bad) else None


class OnnxModel:
    """A gancore ONNX export: inputs drawn or checked from its metadata."""

    def __init__(self, path: str | Path, device: str = "auto", kind: str | None = "generator") -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ExportError(f"{str(self.path)!r} is a folder, not an ONNX model file; give the .onnx file in it")
        if not self.path.is_file():
            raise ExportError(f"model file {str(self.path)!r} does not exist")
        self.session = session(self.path, device)
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, repr(str(self.path)))
        made_for = (self.meta.get("optimized_for") or {}).get("provider")
        if made_for and made_for != self.provider:
            # An onnx-opt file holds fused nodes of the provider it was optimised for (the CPU's).
            if cuda_index(device) is not None:
                raise ExportError(f"{str(self.path)!r} was optimised for onnxruntime's {made_for}; on a GPU "
                                  f"load the plain .onnx (or .fp16.onnx) export instead")
            self.session = session(self.path, "cpu")
        if kind and self.meta["kind"] != kind:
            raise ExportError(f"{str(self.path)!r} is a gancore {self.meta['kind']}, not a {kind}")
        self.inputs: list[dict[str, Any]] = self.meta["inputs"]
        graph = {i.name: i for i in self.session.get_inputs()}
        if list(graph) != [i["name"] for i in self.inputs]:
            raise ExportError(f"{str(self.path)!r}: graph inputs {list(graph)} do not match its metadata; "
                              f"the file was altered after export")
        for spec in self.inputs:
            node = graph[spec["name"]]
            want_type = "tensor(float)" if spec["dtype"] == "float32" else "tensor(int64)"
            if node.type != want_type or node.shape[1:] != spec["shape"]:
                raise ExportError(f"{str(self.path)!r}: graph input {node.name!r} is {node.type} {node.shape}, but its "
                                  f"metadata says {spec['dtype']} (batch, {', '.join(map(str, spec['shape']))})")

    @property
    def provider(self) -> str:
        """The execution provider the session really uses."""
        return self.session.get_providers()[0]

    def draw(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Latent inputs for ``n`` samples, from the distributions in the metadata."""
        if (count := whole(n)) is None or not 1 <= count <= MAX_BATCH:
            raise ExportError(f"n must be a whole number from 1 to {MAX_BATCH}, got {n!r}")
        return draw_latent(self.inputs, count, seed)

    def check(self, feeds: dict[str, np.ndarray]) -> None:
        """Refuse inputs that do not fit the metadata (a wrong name, shape or dtype, a category out of range) or
        one another (batch sizes that differ)."""
        want = {s["name"] for s in self.inputs}
        if set(feeds) != want:
            raise ExportError(f"inputs must be exactly {sorted(want)}, got {sorted(feeds)}")
        for spec in self.inputs:
            v = feeds[spec["name"]]
            if not isinstance(v, np.ndarray):
                raise ExportError(f"input {spec['name']!r} must be a numpy array, got {type(v).__name__}; wrap it "
                                  f"with np.asarray(..., dtype=np.{spec['dtype']})")
            if v.ndim != 1 + len(spec["shape"]) or list(v.shape[1:]) != list(spec["shape"]):
                raise ExportError(f"input {spec['name']!r} must have shape (batch, "
                                  f"{', '.join(map(str, spec['shape']))}), got {v.shape}")
            if str(v.dtype) != spec["dtype"]:
                raise ExportError(f"input {spec['name']!r} must be {spec['dtype']}, got {v.dtype}")
            if not len(v):  # the graph's dynamic batch starts at 1; some graphs fail deep inside on 0
                raise ExportError(f"input {spec['name']!r} holds a batch of 0; give at least one example")
            if v.dtype.kind == "f" and (at := _first(~np.isfinite(v))):
                raise ExportError(f"input {spec['name']!r} holds {v[at]} at index {list(at)}; latent values must "
                                  f"be finite")
            if spec.get("bounded") and (at := _first((v < spec["low"]) | (v > spec["high"]))):
                raise ExportError(f"input {spec['name']!r} holds {v[at]} at index {list(at)}, outside "
                                  f"[{spec['low']}, {spec['high']}], the only values this input means anything for")
            if spec["distribution"] == "categorical" and (at := _first((v < 0) | (v >= (high := class_limits(spec))))):
                limit = high[at[-1]] if np.ndim(high) else high
                raise ExportError(f"input {spec['name']!r} holds category {v[at]} at index {list(at)}, outside "
                                  f"[0, {limit}); the model would turn it into a silent row of zeros")
        batches = {name: int(v.shape[0]) for name, v in feeds.items()}
        if len(set(batches.values())) > 1:
            raise ExportError(f"inputs must share one batch size (their first dimension), got "
                              f"{', '.join(f'{k} {n}' for k, n in sorted(batches.items()))}")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.check(feeds)
        return self.session.run(None, feeds)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        return self.run(self.draw(n, seed))[0]

    def bind(self, feeds: dict[str, np.ndarray]) -> BoundCall:
        """An IO-bound call for ``feeds`` (checked): inputs copied to the provider's device once, outputs left there."""
        self.check(feeds)
        return BoundCall(self.session, feeds)


class BoundCall:
    """onnxruntime IO binding: on CUDA the inputs live in GPU memory and the outputs are written there, so a
    call copies nothing between host and GPU. Call it to run; ``numpy()`` copies the last outputs to the host."""

    def __init__(self, sess: Any, feeds: dict[str, np.ndarray]) -> None:
        import onnxruntime as ort

        self.session = sess
        self.device = "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        # the GPU the session runs on (cuda:N); 0 on the CPU
        self.device_id = int(sess.get_provider_options().get("CUDAExecutionProvider", {}).get("device_id", 0))
        self.binding = sess.io_binding()
        # The OrtValues are kept: the binding holds only their addresses.
        self.inputs = {k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), self.device, self.device_id)
                       for k, v in feeds.items()}
        for name, value in self.inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for out in sess.get_outputs():
            self.binding.bind_output(out.name, self.device, self.device_id)

    def __call__(self) -> list[Any]:
        """Run once; returns the outputs as OrtValues on the device (finished: onnxruntime synchronises)."""
        self.session.run_with_iobinding(self.binding)
        return self.binding.get_outputs()

    def numpy(self) -> list[np.ndarray]:
        return self.binding.copy_outputs_to_cpu()
