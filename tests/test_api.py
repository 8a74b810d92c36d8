"""The Python API (``gancore.prepare``, ``sample``, ``evaluate_run``, ``export_run``) takes what a Python caller
would naturally pass, and refuses the rest with an error that says what it wanted."""

from pathlib import Path

import pytest

import gancore
from gancore.errors import CheckpointError, ConfigError, ExportError, GanError


def test_prepare_takes_a_path_for_out_and_refuses_a_layer_that_is_not_a_dict(tmp_path):
    state = gancore.prepare("gan2d", {"device": "cpu", "train": {"steps": 1}}, out=tmp_path / "r")
    assert state.run_dir == tmp_path / "r" and (tmp_path / "r" / "config.json").is_file()
    with pytest.raises(ConfigError, match=r"a config layer must be a dict .*got list: \[1\]"):
        gancore.prepare("gan2d", [1], out=tmp_path / "r2")
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize("call, error, message", [
    (lambda: gancore.prepare(None), ConfigError, r"prepare\(\) takes a recipe's name first, such as 'dcgan' .*got "
                                                 r"NoneType None"),
    (lambda: gancore.prepare("gan2d", out=5), ConfigError, r"out must be a path \(a str or pathlib.Path\), got int 5"),
    (lambda: gancore.train("runs/x"), GanError, r"train\(\) takes the state that prepare\(\) or prepare_resume\(\) "
                                                r"returns, got str 'runs/x'; to go on with the run folder 'runs/x', "
                                                r"train\(prepare_resume\('runs/x'\)\)"),
    (lambda: gancore.prepare_resume(None), CheckpointError, r"the run to resume must be a path"),
    (lambda: gancore.sample(None), ExportError, r"the run or model to sample must be a path"),
    (lambda: gancore.sample("runs/x", out=3), ExportError, r"out must be a path .*got int 3"),
    (lambda: gancore.evaluate_run(None), GanError, r"the run or model to evaluate must be a path"),
    (lambda: gancore.export_run(None), ExportError, r"the run to export must be a path"),
    (lambda: gancore.export_run("runs/x", None), ExportError, r"formats are names such as \['onnx', 'torchscript'\], "
                                                             r"got None; choose from onnx, "),
    (lambda: gancore.export_run("runs/x", [1]), ExportError, r"formats are names .*got \[1\]"),
])
def test_a_wrong_kind_of_argument_is_named_not_a_type_error_deep_inside(call, error, message, tmp_path):
    with pytest.raises(error, match=message):
        call()
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_checkpoint_may_be_given_as_an_int_and_one_format_or_metric_as_a_string(gan2d_run, tmp_path):
    import numpy as np

    res = gancore.sample(gan2d_run, n=4, checkpoint=8)
    assert res.samples.shape == (4, 2)
    assert gancore.sample(gan2d_run, n=np.int64(3), checkpoint=np.int64(8)).samples.shape == (3, 2)  # numpy's ints
    with pytest.raises(CheckpointError, match=r"checkpoint '3' not found .*have: step-0000008"):
        gancore.sample(gan2d_run, n=4, checkpoint=3)
    with pytest.raises(CheckpointError, match=r"checkpoint must be a step \(500\) or a folder name"):
        gancore.sample(gan2d_run, n=4, checkpoint=8.0)
    with pytest.raises(CheckpointError, match=r"checkpoint '²' not found"):  # a digit to isdigit, not to int()
        gancore.sample(gan2d_run, n=4, checkpoint="²")
    with pytest.raises(CheckpointError, match=r"--checkpoint is empty; give a step"):  # an unset "$CK"
        gancore.sample(gan2d_run, n=4, checkpoint=" ")
    dest = gancore.export_run(gan2d_run, "onnx", out=tmp_path / "e", checkpoint=8)
    assert (dest / "generator.onnx").is_file()
    assert list(gancore.evaluate_run(gan2d_run, metrics="modes").results) == [
        "modes/modes", "modes/modes_total", "modes/high_quality_pct", "modes/reverse_kl"]
    assert isinstance(dest, Path)
