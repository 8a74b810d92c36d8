"""Generator inference: onnxruntime against PyTorch eager (and TorchScript), same weights, same run.

Trains nothing: a dcgan run of one step is exported, then each backend generates batches of 1, 64 and 1024
(and more if asked), timed interleaved; figures are medians over repeats.

    python bench/inference.py [--batches 1 64] [--repeats 200] [--width 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time

from gancore.deploy import OnnxModel
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--width", type=int, default=32)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        state = prepare("dcgan", {"device": "cpu", "generator": {"width": args.width},
                                  "discriminator": {"width": args.width},
                                  "train": {"steps": 1, "batch_size": 8}, "data": {"limit": 64}},
                        out=str(Path(tmp) / "run"))
        train(state, progress=False)
        dest = export_run(state.run_dir, ["onnx", "torchscript"], out=Path(tmp) / "exp")
        g = open_run(state.run_dir, device="cpu").nets.generator
        onnx_model = OnnxModel(dest / "generator.onnx", device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = torch.jit.load(str(dest / "generator.torchscript.pt"))

        print(f"machine: {machine()}")
        print(f"onnxruntime provider: {onnx_model.provider}")
        print(f"dcgan generator width {args.width}, 28x28; median of {args.repeats} calls (ms)")
        print(f"{'batch':>6}{'eager (ref)':>14}{'torchscript':>14}{'onnxruntime':>14}{'ort/eager':>12}")
        for n in args.batches:
            z = np.random.default_rng(0).standard_normal((n, 100), dtype=np.float32)
            zt = torch.from_numpy(z)
            sess = quiet_session(dest / "generator.onnx")
            with torch.inference_mode():
                fns = {
                    "eager": lambda zt=zt: g(noise=zt),
                    "torchscript": lambda zt=zt: ts(zt),
                    "ort": lambda z=z, sess=sess: sess.run(None, {"noise": z}),
                }
                for fn in fns.values():  # warm-up
                    for _ in range(5):
                        fn()
                times: dict[str, list[float]] = {k: [] for k in fns}
                reps = max(10, args.repeats // max(1, n // 8))
                for _ in range(5):  # interleave so drift hits every backend alike
                    for k, fn in fns.items():
                        times[k].append(median_time(fn, max(2, reps // 5)))
            med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            print(f"{n:>6}{med['eager']:>14.3f}{med['torchscript']:>14.3f}{med['ort']:>14.3f}"
                  f"{med['eager'] / med['ort']:>11.2f}x")


if __name__ == "__main__":
    main()
