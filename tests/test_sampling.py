import numpy as np
import pytest
from PIL import Image

from gancore.errors import ExportError, GanError
from gancore.images import grid_array
from gancore.sampling import sample


def test_sample_from_a_run_with_pytorch(trained_run, tmp_path):
    res = sample(trained_run, n=10, out=tmp_path / "g.png", seed=3)
    assert res.backend == "pytorch" and res.samples.shape == (10, 1, 28, 28)
    img = Image.open(tmp_path / "g.png")
    assert img.size == (2 + 4 * 30, 2 + 3 * 30)  # 4 columns, 3 rows, 2-px gutters


def test_sample_from_onnx_reports_the_provider(exported, tmp_path):
    res = sample(exported / "generator.onnx", n=8, out=tmp_path / "o.png")
    assert res.backend == "onnxruntime" and res.device == "CPUExecutionProvider"
    assert (tmp_path / "o.png").exists()


def test_same_seed_same_samples(trained_run):
    a = sample(trained_run, n=4, seed=1).samples
    assert np.array_equal(a, sample(trained_run, n=4, seed=1).samples)
    assert not np.array_equal(a, sample(trained_run, n=4, seed=2).samples)


def test_a_run_and_its_export_give_the_same_samples_at_a_seed(trained_run, exported):
    run, model = sample(trained_run, n=6, seed=4).samples, sample(exported / "generator.onnx", n=6, seed=4).samples
    assert np.abs(run - model).max() <= 1e-4  # the same latents, so the same grid from either


def test_a_run_and_its_export_are_scored_on_the_same_samples(trained_run, exported):
    from gancore.evaluate import OnnxSource
    from gancore.runs import open_run

    run, model = open_run(trained_run, device="cpu").generate(1500, seed=2), OnnxSource(
        exported / "generator.onnx").generate(1500, seed=2)  # past one chunk of 1024
    assert run.shape == model.shape and (run - model).abs().max() <= 1e-4


@pytest.mark.parametrize("n", [0, 65537, "8", 2.5, True])
def test_bad_n(trained_run, n):
    with pytest.raises(ExportError, match=rf"-n must be a whole number from 1 to 65536, got {n!r}"):
        sample(trained_run, n=n)


@pytest.mark.parametrize("traverse", [True, "0", 0.0])
def test_traverse_must_be_a_code_index(trained_run, traverse):
    with pytest.raises(ExportError, match=rf"traverse names a continuous code by its index .*got {traverse!r}"):
        sample(trained_run, traverse=traverse)


@pytest.mark.parametrize("seed", [-1, 2**32, 10**23])
def test_bad_seed(trained_run, exported, seed):
    for target in (trained_run, exported / "generator.onnx"):
        with pytest.raises(GanError, match=r"--seed must be a whole number from 0 to 4294967295"):
            sample(target, n=4, seed=seed)


def test_run_options_given_with_an_onnx_model_are_errors_not_ignored(exported):
    model = exported / "generator.onnx"
    with pytest.raises(ExportError, match=r"--checkpoint picks weights in a run folder.*leave --checkpoint out"):
        sample(model, n=4, checkpoint="2")
    with pytest.raises(ExportError, match=r"--device 'cdua' for an ONNX model: choose auto, cpu, cuda or cuda:N"):
        sample(model, n=4, device="cdua")


def test_a_grid_is_written_only_as_a_png_and_never_over_another_file(trained_run, tmp_path):
    with pytest.raises(ExportError, match=r"grids are PNG files.*\.png"):
        sample(trained_run, n=4, out=tmp_path / "g.jpg")
    config = trained_run / "config.json"
    before = config.read_bytes()
    with pytest.raises(ExportError, match="grids are PNG files"):
        sample(trained_run, n=4, out=config)
    (tmp_path / "fake.png").write_text("notes")
    with pytest.raises(ExportError, match="exists and is not a PNG picture"):
        sample(trained_run, n=4, out=tmp_path / "fake.png")
    assert (tmp_path / "fake.png").read_text() == "notes" and config.read_bytes() == before
    assert not (tmp_path / "g.jpg").exists()
    sample(trained_run, n=4, out=tmp_path / "g.png", seed=1)
    sample(trained_run, n=9, out=tmp_path / "g.png", seed=2)  # an earlier grid is replaced
    assert Image.open(tmp_path / "g.png").size == (2 + 3 * 30, 2 + 3 * 30)


def test_grid_maps_value_range_to_bytes():
    imgs = np.array([[[[-1.0, 1.0]]], [[[0.0, 0.0]]]], dtype=np.float32)  # 2 images of 1x1x2
    g = grid_array(imgs, (-1.0, 1.0), nrow=2, pad=0)
    assert g.tolist() == [[0, 255, 128, 128]]


def test_a_model_is_told_from_a_run_by_its_suffix_in_any_case_and_a_run_named_onnx_is_a_run(
        trained_run, exported, tmp_path):
    import shutil

    shutil.copy(exported / "generator.onnx", tmp_path / "G.ONNX")
    assert sample(tmp_path / "G.ONNX", n=4).backend.startswith("onnxruntime")
    shutil.copytree(trained_run, tmp_path / "odd.onnx")
    assert sample(tmp_path / "odd.onnx", n=4).backend.startswith("pytorch")


def test_bounded_is_for_uniform_inputs_and_travels_in_the_metadata():
    from gancore.components import LatentSpec

    with pytest.raises(ValueError, match=r"latent 'z': bounded is for uniform inputs, not normal"):
        LatentSpec("z", (4,), "normal", bounded=True)
    u = LatentSpec("u", (4,), "uniform", low=0.0, high=1.0, bounded=True)
    assert u.to_json()["bounded"] is True and LatentSpec.from_json(u.to_json()) == u
    assert "bounded" not in LatentSpec("c", (2,), "uniform").to_json()  # older exports read the same
