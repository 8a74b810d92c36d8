"""CUDA paths: training, resume and export of a GPU run, onnxruntime's CUDA provider. Skipped without a GPU."""

import json

import numpy as np
import pytest
import torch

from gancore.loop import prepare, prepare_resume, train
from tests.conftest import tiny

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_train_resume_and_export_a_cuda_run(tmp_path):
    from gancore.export import export_run
    from gancore.sampling import sample

    # train.ema: the average and its batch-norm re-estimate live on the GPU too
    state = train(prepare("dcgan", tiny(device="cuda", train={"ema": 0.9}), out="runs/gpu"), progress=False)
    assert state.device.type == "cuda" and state.data.x.is_cuda
    assert next(state.nets.generator.parameters()).is_cuda
    assert next(state.average.copies["generator"].parameters()).is_cuda
    resumed = prepare_resume(state.run_dir, steps=8)
    assert resumed.step == 6
    train(resumed, progress=False)
    log = [json.loads(x) for x in (state.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 8 and all(np.isfinite(x["d_adv"]) for x in log)
    dest = export_run(state.run_dir, ["onnx", "torchscript"], out=tmp_path / "e")  # parity measured on CPU
    assert (dest / "generator.onnx").exists()
    assert sample(state.run_dir, n=4).device.startswith("cuda")


@cuda
def test_a_discriminators_average_and_its_statistics_live_on_the_gpu():
    from torch import nn

    # train.ema_nets: D's batch-norm statistics are estimated on real examples held on the GPU
    cfg = tiny(device="cuda", train={"ema": 0.9, "ema_nets": ["generator", "discriminator"]})
    state = train(prepare("dcgan", cfg, out="runs/gpu-d"), progress=False)
    bns = [m for m in state.average.copies["discriminator"].modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.running_mean.is_cuda and m.running_mean.abs().sum() > 0 for m in bns)


@cuda
def test_onnxruntime_uses_cuda_when_it_can(exported):
    import onnxruntime as ort

    from gancore.deploy import OnnxModel

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
    model = OnnxModel(exported / "generator.onnx", device="cuda")
    assert model.provider == "CUDAExecutionProvider"
    cpu = OnnxModel(exported / "generator.onnx", device="cpu")
    feeds = cpu.draw(16, seed=0)
    assert np.abs(model.run(feeds)[0] - cpu.run(feeds)[0]).max() < 1e-3


@cuda
def test_fp16_export_and_io_binding_on_cuda(trained_run, tmp_path):
    import onnxruntime as ort

    from gancore.deploy import OnnxModel
    from gancore.errors import ExportError
    from gancore.export import FP16_TOLERANCE, export_run

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
    dest = export_run(trained_run, ["onnx-fp16", "onnx-opt"], out=tmp_path / "e")
    cpu = OnnxModel(dest / "generator.onnx", device="cpu")
    feeds = cpu.draw(64, seed=0)
    ref = cpu.run(feeds)[0]
    runs = [("generator.onnx", 1e-3, "cuda"), ("generator.fp16.onnx", FP16_TOLERANCE, "cuda:0")]
    last = f"cuda:{torch.cuda.device_count() - 1}"
    if last != "cuda:0":  # a GPU other than the first, by index, where there is one
        runs += [("generator.onnx", 1e-3, last), ("generator.fp16.onnx", FP16_TOLERANCE, last)]
    for name, tol, device in runs:
        model = OnnxModel(dest / name, device=device)
        call = model.bind(feeds)
        out = call()[0]
        assert out.device_name() == "cuda"  # the output stayed in GPU memory
        assert call.device_id == (int(device[5:]) if ":" in device else 0)
        assert np.abs(call.numpy()[0] - ref).max() < tol, name
    with pytest.raises(ExportError, match=r"CUDA provider did not start.*GPU 99"):
        OnnxModel(dest / "generator.onnx", device="cuda:99")
    with pytest.raises(ExportError, match="optimised for onnxruntime's CPUExecutionProvider"):
        OnnxModel(dest / "generator.opt.onnx", device="cuda")
    assert OnnxModel(dest / "generator.opt.onnx", device="auto").provider == "CPUExecutionProvider"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpu_processes_with_nccl(tmp_path):
    from tests.test_distributed import TINY, gan

    args = [a if a != "cpu" else "cuda" for a in TINY]
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--steps", "3", "--out", "runs/nccl", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "device cuda:0, 2 processes" in res.stderr
