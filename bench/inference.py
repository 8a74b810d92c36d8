"""Generator inference: onnxruntime against PyTorch eager (and TorchScript), same weights, same run.

Trains nothing: a dcgan run of one step is exported (fp32, fp16 and onnxruntime's optimised graph), then
each backend generates batches of 1, 64 and 1024, timed interleaved; figures are medians over repeats.
On CPU: eager, TorchScript, onnxruntime on the plain and on the saved optimised graph, and each file's
load time. On CUDA (``--device cuda`` or ``cuda:N``, one GPU for both): the same in fp32 plus fp16 (PyTorch
``.half()`` against the ``.fp16.onnx`` export), onnxruntime with IO binding (inputs and outputs in GPU memory,
as PyTorch's are) and without it (numpy in and out).

    python bench/inference.py [--device cpu|cuda|cuda:N] [--batches 1 64 1024] [--repeats 200] [--width 32]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time

from gancore.deploy import OnnxModel, cuda_index
from gancore.errors import ExportError
from gancore.export import export_run
from gancore.loop import prepare, train
from gancore.runs import open_run


def quiet_session(path: Path):
    """An onnxruntime CPU session whose idle threads do not spin: spinning threads would steal the cores
    from the PyTorch calls timed right after them and flatter onnxruntime."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def load_ms(path: Path, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        quiet_session(path)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def backends(dest: Path, g: torch.nn.Module, ts: torch.nn.Module, n: int, device: torch.device
             ) -> dict[str, Callable[[], object]]:
    z = np.random.default_rng(0).standard_normal((n, 100), dtype=np.float32)
    zt = torch.from_numpy(z).to(device)
    if device.type == "cpu":
        plain, opt = quiet_session(dest / "generator.onnx"), quiet_session(dest / "generator.opt.onnx")
        return {"eager": lambda: g(noise=zt), "torchscript": lambda: ts(zt),
                "ort": lambda: plain.run(None, {"noise": z}), "ort opt": lambda: opt.run(None, {"noise": z})}
    g16, zt16 = copy.deepcopy(g).half(), zt.half()
    fp32, fp16 = OnnxModel(dest / "generator.onnx", str(device)), OnnxModel(dest / "generator.fp16.onnx", str(device))
    bound32, bound16 = fp32.bind({"noise": z}), fp16.bind({"noise": z})
    return {"eager": lambda: g(noise=zt), "torchscript": lambda: ts(zt), "eager fp16": lambda: g16(noise=zt16),
            "ort": bound32, "ort fp16": bound16, "ort numpy": lambda: fp32.session.run(None, {"noise": z})}


def bench_device(name: str) -> torch.device:
    """``--device``: cpu, cuda or cuda:N, one GPU for PyTorch and onnxruntime alike."""
    try:
        gpu = cuda_index(name)
    except ExportError:
        gpu = None
    if name != "cpu" and gpu is None:  # a bad name, or auto: no choice for a timing
        raise argparse.ArgumentTypeError(f"{name!r}: choose cpu, cuda or cuda:N")
    if gpu is None:
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu >= count:
        raise argparse.ArgumentTypeError(f"{name!r}: PyTorch sees no GPU here; choose cpu" if not count else
                                         f"{name!r}: PyTorch sees {count} GPU(s) here; choose a lower index")
    return torch.device("cuda", gpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", type=bench_device, help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--width", type=int, default=32)
    args = ap.parse_args()
    device = args.device
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the machine line names this GPU
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    with tempfile.TemporaryDirectory() as tmp:
        state = prepare("dcgan", {"device": "cpu", "generator": {"width": args.width},
                                  "discriminator": {"width": args.width},
                                  "train": {"steps": 1, "batch_size": 8}, "data": {"limit": 64}},
                        out=str(Path(tmp) / "run"))
        train(state, progress=False)
        dest = export_run(state.run_dir, ["onnx", "onnx-fp16", "onnx-opt", "torchscript"], out=Path(tmp) / "exp")
        g = open_run(state.run_dir, device=str(device)).nets.generator.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = torch.jit.load(str(dest / "generator.torchscript.pt"), map_location=device)

        print(f"machine: {machine()}")
        print(f"dcgan generator width {args.width}, 28x28, on {device}; median of {args.repeats} calls (ms)")
        if device.type == "cpu":
            print(f"onnxruntime session load: generator.onnx {load_ms(dest / 'generator.onnx'):.1f} ms, "
                  f"generator.opt.onnx (saved optimised graph) {load_ms(dest / 'generator.opt.onnx'):.1f} ms")
        header = None
        for n in args.batches:
            with torch.inference_mode():
                fns = backends(dest, g, ts, n, device)
                if header is None:
                    header = list(fns)
                    print(f"{'batch':>6}" + "".join(f"{k + (' (ref)' if k == 'eager' else ''):>14}" for k in header)
                          + f"{'eager/ort':>11}")
                for fn in fns.values():  # warm-up
                    for _ in range(5):
                        fn()
                times: dict[str, list[float]] = {k: [] for k in fns}
                reps = max(10, args.repeats // max(1, n // 8))
                for _ in range(5):  # interleave so drift hits every backend alike
                    for k, fn in fns.items():
                        times[k].append(median_time(fn, max(2, reps // 5), sync))
            med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            print(f"{n:>6}" + "".join(f"{med[k]:>14.3f}" for k in header) + f"{med['eager'] / med['ort']:>10.2f}x")


if __name__ == "__main__":
    main()
