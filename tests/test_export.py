"""Export: ONNX with metadata and parity, TorchScript without warnings, nothing left behind on failure."""

import json
import os
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import pytest
import torch

from gancore import deploy
from gancore import export as export_mod
from gancore.deploy import OnnxModel
from gancore.errors import ExportError
from gancore.export import export_run
from gancore.runs import open_run


def test_export_writes_onnx_torchscript_and_card(exported):
    assert sorted(os.listdir(exported)) == ["card.json", "generator.onnx", "generator.torchscript.pt"]
    card = json.loads((exported / "card.json").read_text())
    g = card["models"]["generator"]
    assert card["plugin"] == "dcgan" and card["step"] == 6
    assert g["inputs"][0] == {"name": "noise", "shape": [100], "dtype": "float32", "distribution": "normal"}
    assert g["output"]["value_range"] == [-1.0, 1.0] and g["output"]["layout"] == "NCHW"
    assert set(g["onnx"]["max_abs_diff"]) == {"1", "5"}
    assert max(g["onnx"]["max_abs_diff"].values()) <= 1e-4


def test_onnx_has_named_inputs_a_dynamic_batch_and_metadata(exported):
    model = onnx.load(str(exported / "generator.onnx"))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.name == "noise"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert [o.name for o in model.graph.output] == ["images"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["gancore.plugin"]) == "dcgan"
    assert json.loads(meta["gancore.kind"]) == "generator"
    assert json.loads(meta["gancore.output"])["shape"] == [1, 28, 28]
    assert len(model.graph.initializer) > 0 and not any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)  # one file


@pytest.mark.parametrize("n", [1, 3, 64])
def test_onnxruntime_matches_pytorch_at_any_batch(exported, trained_run, n):
    model = OnnxModel(exported / "generator.onnx")
    feeds = model.draw(n, seed=n)
    state = open_run(trained_run, device="cpu")
    with torch.no_grad():
        ref = state.nets.generator(noise=torch.from_numpy(feeds["noise"])).numpy()
    got = model.run(feeds)[0]
    assert got.shape == (n, 1, 28, 28)
    assert np.abs(got - ref).max() <= 1e-4


def test_torchscript_loads_and_matches(exported, trained_run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(str(exported / "generator.torchscript.pt"))
    z = torch.randn(4, 100)
    state = open_run(trained_run, device="cpu")
    with torch.no_grad():
        assert torch.allclose(ts(z), state.nets.generator(noise=z), atol=1e-5)


@pytest.fixture(scope="module")
def exported_all(trained_run, tmp_path_factory):
    return export_run(trained_run, ["onnx-fp16", "onnx-opt", "pt2"], out=tmp_path_factory.mktemp("all") / "e")


def test_fp16_and_optimised_exports_are_parity_checked(exported_all, trained_run):
    # onnx-opt brings the fp32 file it is made from
    assert sorted(os.listdir(exported_all)) == ["card.json", "generator.fp16.onnx", "generator.onnx",
                                                "generator.opt.onnx", "generator.pt2"]
    g = json.loads((exported_all / "card.json").read_text())["models"]["generator"]
    assert g["onnx-fp16"]["precision"] == "float16" and g["onnx-fp16"]["tolerance"] == export_mod.FP16_TOLERANCE
    assert 0 < max(g["onnx-fp16"]["max_abs_diff"].values()) <= export_mod.FP16_TOLERANCE  # really rounded
    assert max(g["onnx-opt"]["max_abs_diff"].values()) <= 1e-4
    half = onnx.load(str(exported_all / "generator.fp16.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    # the deploy interface is the fp32 model's: float32 inputs and outputs, the same metadata
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    feeds = OnnxModel(exported_all / "generator.onnx").draw(8, seed=3)
    state = open_run(trained_run, device="cpu")
    with torch.no_grad():
        ref = state.nets.generator(noise=torch.from_numpy(feeds["noise"])).numpy()
    for name, tol in [("generator.opt.onnx", 1e-4), ("generator.fp16.onnx", export_mod.FP16_TOLERANCE)]:
        model = OnnxModel(exported_all / name)
        assert np.abs(model.run(feeds)[0] - ref).max() <= tol, name
    opt = OnnxModel(exported_all / "generator.opt.onnx")
    assert opt.meta["optimized_for"]["provider"] == "CPUExecutionProvider"
    assert {n.op_type for n in onnx.load(str(exported_all / "generator.opt.onnx")).graph.node} != \
        {n.op_type for n in onnx.load(str(exported_all / "generator.onnx")).graph.node}  # really rewritten


def test_pt2_holds_no_pickle_carries_the_metadata_and_matches_at_any_batch(exported_all, trained_run):
    path = exported_all / "generator.pt2"
    assert export_mod._pickled_entries(path) == []
    g = json.loads((exported_all / "card.json").read_text())["models"]["generator"]
    assert set(g["pt2"]["max_abs_diff"]) == {"1", "5"} and max(g["pt2"]["max_abs_diff"].values()) <= 1e-4
    extra = {export_mod.PT2_METADATA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.export.load(str(path), extra_files=extra).module()
    meta = json.loads(extra[export_mod.PT2_METADATA])
    assert meta["kind"] == "generator" and meta["input_names"] == ["noise"] and meta["output_names"] == ["images"]
    assert meta["precision"] == "float32" and meta["plugin"] == "dcgan" and meta["step"] == 6
    assert meta["inputs"] == g["inputs"] and meta["output"]["value_range"] == [-1.0, 1.0]
    state = open_run(trained_run, device="cpu")
    for n in (3, 64):  # neither parity batch: the batch is dynamic
        z = torch.randn(n, 100, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            assert torch.allclose(module(z), state.nets.generator(noise=z), atol=1e-5)


def test_the_pt2_snippet_in_exported_readme_runs(exported_all):
    import re

    text = (Path(__file__).parents[1] / "exported" / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "torch.export.load" in b]
    scope: dict = {}
    exec(snippet.replace("exported/dcgan-0001/generator.pt2", str(exported_all / "generator.pt2")), scope)
    assert scope["images"].shape == (16, 1, 28, 28) and scope["images"].abs().max() <= 1


def test_a_pt2_archive_that_would_hold_a_pickle_is_refused_and_leaves_nothing(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "_pickled_entries", lambda path: ["g/data/sample_inputs/model.pt"])
    with pytest.raises(ExportError, match=r"would hold pickled data \(g/data/sample_inputs/model\.pt\), which "
                                          r"gancore never writes; export it as ONNX instead"):
        export_run(trained_run, ["onnx", "pt2"], out=tmp_path / "bad")
    assert os.listdir(tmp_path) == []


def test_pickled_entries_reads_the_archive_configs(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.pt2", "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/data/weights/model_weights_config.json", json.dumps(
            {"config": {"w": {"use_pickle": False}, "sub": {"use_pickle": True}}}))
        z.writestr("m/data/weights/weight_0", b"\x00" * 8)  # raw bytes: fine
        z.writestr("m/data/constants/model_constants_config.json", json.dumps({"config": {}}))
        z.writestr("m/data/sample_inputs/model.pt", b"\x80\x02")
        z.writestr("m/serialized_state_dict.pt", b"\x80\x02")  # an older torch's torch.save()d weights
    assert export_mod._pickled_entries(tmp_path / "a.pt2") == [
        "m/data/weights/model_weights_config.json:sub", "m/data/sample_inputs/model.pt", "m/serialized_state_dict.pt"]
    with zipfile.ZipFile(tmp_path / "old.pt2", "w") as z:  # torch < 2.8: no archive_format record
        z.writestr("old/serialized_exported_program.json", "{}")
    assert export_mod._pickled_entries(tmp_path / "old.pt2") == ["old.pt2 (not the torch >= 2.8 archive layout)"]


def test_pt2_needs_a_torch_that_writes_raw_tensors(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.7.1+cpu")
    with pytest.raises(ExportError, match=r"--format pt2 needs torch 2\.8 or later.*this is torch 2\.7\.1"):
        export_run(trained_run, ["pt2"], out=tmp_path / "e")
    assert os.listdir(tmp_path) == []


def test_an_fp16_parity_failure_leaves_nothing_behind(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "FP16_TOLERANCE", 1e-9)
    with pytest.raises(ExportError, match=r"\(fp16\) and PyTorch disagree"):
        export_run(trained_run, ["onnx", "onnx-fp16"], out=tmp_path / "bad")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("n", [0, True, 2.5, "4"])
def test_draw_takes_a_whole_number_of_samples(exported, n):
    with pytest.raises(ExportError, match=rf"n must be a whole number from 1 to 65536, got {n!r}"):
        OnnxModel(exported / "generator.onnx").draw(n)


def test_io_binding_returns_what_run_returns(exported):
    model = OnnxModel(exported / "generator.onnx", device="cpu")
    feeds = model.draw(5, seed=1)
    call = model.bind(feeds)
    outs = call()
    assert outs[0].shape() == [5, 1, 28, 28] and outs[0].device_name() == "cpu"
    np.testing.assert_array_equal(call.numpy()[0], model.run(feeds)[0])
    with pytest.raises(ExportError, match="must be float32"):
        model.bind({"noise": feeds["noise"].astype(np.float64)})


@pytest.mark.parametrize(("device", "gpu"), [("auto", None), ("cpu", None), ("cuda", 0), ("cuda:0", 0), ("cuda:3", 3)])
def test_an_onnx_device_names_a_gpu_or_none(device, gpu):
    assert deploy.cuda_index(device) == gpu


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda1", "CPU", "cuda:\u00b2"])
def test_an_unknown_onnx_device_is_refused(device):
    with pytest.raises(ExportError, match=r"choose auto, cpu, cuda or cuda:N"):
        deploy.cuda_index(device)


class FakeSession:
    """onnxruntime.InferenceSession as a GPU machine would make it: records its providers; one whose CUDA provider
    names a GPU missing here (``device_id`` above ``gpus``) fails to start, as onnxruntime does."""

    made: ClassVar[list[list]] = []
    gpus = 2

    def __init__(self, path, sess_options=None, providers=(), **kwargs):
        self.providers = list(providers)
        FakeSession.made.append(self.providers)
        first = self.providers[0]
        if isinstance(first, tuple) and first[1]["device_id"] >= self.gpus:
            if int(kwargs.get("enable_fallback", 1)):  # as onnxruntime: a banner on stdout, then the CPU
                print("EP Error ... Falling back to ['CPUExecutionProvider'] and retrying.")
                self.providers = ["CPUExecutionProvider"]
                return
            raise RuntimeError("CUDA failure 101: invalid device ordinal")

    def get_providers(self):
        return [p[0] if isinstance(p, tuple) else p for p in self.providers]


@pytest.fixture
def fake_gpus(monkeypatch):
    import onnxruntime as ort

    FakeSession.made = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(deploy, "_has_driver", lambda: True)
    return FakeSession.made


def test_cuda_n_starts_onnxruntime_on_that_gpu_and_a_missing_one_is_an_error(fake_gpus, capsys):
    assert deploy.session("m.onnx", "cuda:1").get_providers()[0] == "CUDAExecutionProvider"
    assert fake_gpus[-1][0] == ("CUDAExecutionProvider", {"device_id": 1})
    assert deploy.session("m.onnx", "cpu").get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ExportError, match=r"CUDA provider did not start on GPU 5 \(RuntimeError: CUDA failure 101.*"
                                          r"--device cpu runs the model on the CPU"):
        deploy.session("m.onnx", "cuda:5")
    assert fake_gpus[-1] == ["CPUExecutionProvider"]  # the model itself was tried on the CPU
    assert capsys.readouterr().out == ""  # onnxruntime's own fallback, which prints, was off


def test_auto_falls_back_to_the_cpu_when_the_cuda_provider_fails_to_start(fake_gpus, monkeypatch):
    monkeypatch.setattr(FakeSession, "gpus", 0)
    assert deploy.session("m.onnx", "auto").get_providers() == ["CPUExecutionProvider"]
    assert fake_gpus[0][0] == ("CUDAExecutionProvider", {"device_id": 0})  # GPU 0 was tried first


def test_cuda_asked_for_on_a_machine_without_a_gpu_is_an_error(exported, monkeypatch):
    monkeypatch.setattr(deploy, "_has_driver", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ExportError, match=rf"--device {device} asked for, but onnxruntime's CUDA provider did "
                                              rf"not start here"):
            OnnxModel(exported / "generator.onnx", device=device)


def test_export_leaks_no_warnings(trained_run, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_run(trained_run, ["onnx", "pt2", "torchscript"], out=tmp_path / "e")
    assert [str(w.message) for w in caught] == []


def test_a_parity_failure_leaves_nothing_behind(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)
    with pytest.raises(ExportError, match=r"disagree.*nothing was exported"):
        export_run(trained_run, ["onnx"], out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_failed_export_removes_the_folders_it_created(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="nothing was exported"):
        export_run(trained_run, ["onnx"], out=tmp_path / "new" / "deeper" / "e")
    assert os.listdir(tmp_path) == []


def test_leftovers_of_a_killed_export_are_cleared_and_a_set_aside_export_put_back(trained_run, tmp_path):
    dead = _dead_pid()
    (tmp_path / f".tmp-e-{dead}").mkdir()  # killed while writing
    (tmp_path / f".tmp-e-{os.getpid()}").mkdir()  # this process's own: a live export's, kept
    (tmp_path / f".tmp-e2-{dead}").mkdir()  # another destination's: not this export's business
    aside = tmp_path / f".old-e-{dead}"  # killed between the two renames of a --force swap
    aside.mkdir()
    (aside / "card.json").write_text("{}")
    with pytest.raises(ExportError, match="already exists"):  # the earlier export is back, so not overwritten
        export_run(trained_run, ["onnx"], out=tmp_path / "e")
    assert sorted(os.listdir(tmp_path)) == sorted(["e", f".tmp-e-{os.getpid()}", f".tmp-e2-{dead}"])
    assert (tmp_path / "e" / "card.json").read_text() == "{}"


def test_an_existing_export_is_not_overwritten(trained_run, tmp_path):
    dest = export_run(trained_run, ["onnx"], out=tmp_path / "e")
    stamp = (dest / "generator.onnx").stat().st_mtime_ns
    with pytest.raises(ExportError, match=r"already exists.*--force"):
        export_run(trained_run, ["onnx"], out=dest)
    assert (dest / "generator.onnx").stat().st_mtime_ns == stamp
    export_run(trained_run, ["torchscript"], out=dest, force=True)
    assert sorted(os.listdir(dest)) == ["card.json", "generator.torchscript.pt"]


def test_force_replaces_only_an_earlier_export(trained_run, tmp_path):
    before = sorted(p.relative_to(trained_run) for p in Path(trained_run).rglob("*"))
    with pytest.raises(ExportError, match=r"not an earlier export.*nothing was changed"):
        export_run(trained_run, ["onnx"], out=trained_run, force=True)  # the run folder itself
    assert sorted(p.relative_to(trained_run) for p in Path(trained_run).rglob("*")) == before
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_run(trained_run, ["onnx"], out=tmp_path / "afile", force=True)
    with pytest.raises(ExportError, match=r"it is not an earlier export, so choose another --out$"):
        export_run(trained_run, ["onnx"], out=tmp_path / "afile")  # no --force offered where it cannot help
    with pytest.raises(ExportError, match=r"afile is a file, not a folder"):
        export_run(trained_run, ["onnx"], out=tmp_path / "afile" / "e")
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["afile"]
    (tmp_path / "empty").mkdir()
    assert (export_run(trained_run, ["onnx"], out=tmp_path / "empty", force=True) / "card.json").is_file()


def test_force_keeps_an_export_folder_that_holds_files_of_the_users(trained_run, tmp_path):
    from PIL import Image

    from gancore.sampling import sample

    dest = export_run(trained_run, ["onnx"], out=tmp_path / "e")
    (dest / "generator.eval.json").write_text("{}")  # gan eval's report: an export's own file
    sample(dest / "generator.onnx", n=4, out=dest / "samples.png")  # as make demo does
    (dest / ".generator.eval.json.99999.tmp").write_text("{")  # a killed gan eval's write
    (dest / ".DS_Store").write_bytes(b"Finder")
    export_run(trained_run, ("onnx", "onnx-fp16"), out=dest, force=True)  # a tuple of formats, as a list
    assert sorted(os.listdir(dest)) == ["card.json", "generator.fp16.onnx", "generator.onnx"]
    (dest / "notes.txt").write_text("mine")
    (dest / "grids").mkdir()
    Image.new("L", (4, 4)).save(dest / "photo.png")  # a PNG gancore did not draw
    with pytest.raises(ExportError, match=r"holds 3 entries that no export writes \(grids, notes.txt, photo.png\); "
                                          r"--force would delete them with the folder, so nothing was changed"):
        export_run(trained_run, ["torchscript"], out=dest, force=True)
    assert sorted(os.listdir(dest)) == ["card.json", "generator.fp16.onnx", "generator.onnx", "grids", "notes.txt",
                                        "photo.png"]


def test_formats_are_names_in_any_collection(trained_run, tmp_path):
    assert (export_run(trained_run, iter(["onnx"]), out=tmp_path / "a") / "generator.onnx").is_file()
    with pytest.raises(ExportError, match=r"formats are names such as \['onnx', 'torchscript'\], got \{'onnx': 1\}"):
        export_run(trained_run, {"onnx": 1}, out=tmp_path / "b")


def test_unknown_format(trained_run):
    with pytest.raises(ExportError, match="unknown export format pt3"):
        export_run(trained_run, ["pt3"])


def test_an_onnx_file_that_is_not_a_gancore_generator(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              tmp_path / "other.onnx")
    with pytest.raises(ExportError, match="not a gancore export"):
        OnnxModel(tmp_path / "other.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(ExportError, match="not a loadable ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")


def test_inputs_are_checked_against_the_metadata(exported):
    model = OnnxModel(exported / "generator.onnx")
    with pytest.raises(ExportError, match=r"must have shape \(batch, 100\)"):
        model.run({"noise": np.zeros((2, 99), np.float32)})
    with pytest.raises(ExportError, match="must be float32"):
        model.run({"noise": np.zeros((2, 100), np.float64)})
    with pytest.raises(ExportError, match="exactly"):
        model.run({"z": np.zeros((2, 100), np.float32)})


def test_categorical_inputs_out_of_range_are_refused(exported):
    model = OnnxModel(exported / "generator.onnx")
    model.inputs = [{"name": "noise", "shape": [1], "dtype": "int64", "distribution": "categorical", "classes": 10}]
    with pytest.raises(ExportError, match=r"category 10 at index \[1, 0\], outside \[0, 10\)"):
        model.check({"noise": np.array([[3], [10]], dtype=np.int64)})


def test_extra_models_are_checked_before_anything_is_written():
    from torch import nn

    from gancore.components import ExportModel, LatentSpec
    from gancore.export import check_extra

    images = [LatentSpec("images", (1, 4, 4), "uniform", low=-1.0, high=1.0)]
    model = ExportModel(module=nn.Identity(), inputs=images, outputs=["y"], kind="encoder")
    given: dict[str, tuple[str, str]] = {}
    assert check_extra("bigan", {"encoder": model}, given) == {"encoder": model}
    assert given == {"encoder": ("plugin 'bigan'", "encoder")}
    assert check_extra("text", {"generator": model}, given)  # a plugin may replace the core's generator export
    for extra, why in (({"encoder": model}, r"model 'encoder', which plugin 'bigan' exports too"),
                       ({"Encoder": model}, r"model 'Encoder', which plugin 'bigan' exports too as 'encoder' "
                                            r"\(names that differ only in case meet on some disks\)"),
                       ({"card": model}, r"model 'card', which the core exports too;"),
                       ({"Generator": model}, r"model 'Generator', which plugin 'text' exports too as 'generator'"),
                       ({"../x": model}, r"model '../x', which is not a plain file stem"),
                       ({"generator.fp16": model}, r"model 'generator.fp16', which is not a plain .*a dot would meet"),
                       ({"q": "not a model"}, r"returned dict .*expected None or \{file stem"),
                       ({"f": ExportModel(module=lambda x: x, inputs=images, outputs=["y"], kind="f")},  # type: ignore
                        r"'s model 'f' has a module of type function, not a torch.nn.Module"),
                       ({"f": ExportModel(module=nn.Identity(), inputs=["x"], outputs=["y"], kind="f")},  # type: ignore
                        r"'s model 'f' has inputs \['x'\], not a list of gancore.components.LatentSpec"),
                       ({"f": ExportModel(module=nn.Identity(), inputs=images, outputs="y", kind="f")},  # type: ignore
                        r"'s model 'f' has outputs 'y', not a list of output names")):
        with pytest.raises(ExportError, match=rf"^plugin 'other': gan_export_extra(( names a )| )?{why}"):
            check_extra("other", extra, given)


def test_an_extra_model_naming_more_outputs_than_its_module_returns_is_refused(tmp_path):
    from torch import nn

    from gancore.components import ExportModel, LatentSpec
    from gancore.export import export_onnx

    class Broken(nn.Module):
        def forward(self, x):
            return x * 2

    images = [LatentSpec("images", (1, 4, 4), "uniform", low=-1.0, high=1.0)]
    with pytest.raises(ExportError, match=r"the head's module returns 1 output\(s\), but its ExportModel names 2: "
                                          r"y, z; nothing was exported"):
        export_onnx(ExportModel(module=Broken(), inputs=images, outputs=["y", "z"], kind="head"),
                    tmp_path / "h.onnx", {})
