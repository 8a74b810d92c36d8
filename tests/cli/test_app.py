"""The ``gan`` command: happy paths and every bad input (one line, exit code 2, nothing lost)."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gancore.builtin import inception
from gancore_cli.app import app
from tests.conftest import needs_fidelity, with_broken_metric

TINY_SETS = ["--device", "cpu", "--set", "data.limit=64", "--set", "generator.width=8",
             "--set", "discriminator.width=8",
             "--set", "train.checkpoint_every=2", "--set", "train.sample_count=4", "--batch-size", "8"]


def gan(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(res, pattern):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_plugins_prints_json():
    res = gan("plugins")
    assert res.exit_code == 0
    plugins = {p["name"]: p for p in json.loads(res.stdout)}
    assert plugins["dcgan"]["distribution"] == "gancore" and plugins["dcgan"]["origin"]
    assert plugins["dcgan"]["components"]["generators"] == ["dcgan"]


def test_plugins_options_lists_each_components_description_and_defaults():
    res = gan("plugins", "--options")
    assert res.exit_code == 0
    plugins = {p["name"]: p for p in json.loads(res.stdout)}
    (g,) = plugins["dcgan"]["components"]["generators"]
    assert g["name"] == "dcgan" and g["description"].startswith("DCGAN generator") and g["options"]["width"] == 64
    undescribed = [(p["name"], kind, c["name"]) for p in plugins.values() for kind, comps in p["components"].items()
                   for c in comps if not c["description"]]
    assert undescribed == []  # every shipped component says what it is


def test_train_resume_sample_export_end_to_end(tmp_path):
    res = gan("train", "--plugin", "dcgan", "--steps", "2", "--quiet", "--out", "runs/e2e", *TINY_SETS)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == "runs/e2e"
    res = gan("train", "--resume", "runs/e2e", "--steps", "4", "--quiet", "--on-nan", "rollback")
    assert res.exit_code == 0, res.output
    assert "from step 2" in res.stderr
    assert os.path.isdir("runs/e2e/checkpoints/step-0000004")
    assert json.loads(Path("runs/e2e/config.json").read_text())["train"]["on_nan"] == "rollback"
    res = gan("sample", "runs/e2e", "-n", "4", "-o", "grid.png")
    assert res.exit_code == 0 and "pytorch on cpu" in res.stdout
    res = gan("export", "runs/e2e", "--format", "onnx", "--format", "torchscript")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == os.path.join("exported", "e2e")
    res = gan("sample", "exported/e2e/generator.onnx", "-n", "4", "-o", "onnx.png")
    assert res.exit_code == 0 and "onnxruntime on CPUExecutionProvider" in res.stdout
    assert os.path.getsize("onnx.png") > 0


def test_progress_lines_show_step_losses_speed_and_time_left():
    res = gan("train", "--plugin", "dcgan", "--steps", "2", "--out", "runs/p", "--set", "train.log_every=1",
              *TINY_SETS)
    assert res.exit_code == 0
    assert "step 2/2 | d_adv" in res.stderr and "img/s" in res.stderr and "left" in res.stderr


def test_config_file(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nsteps = 1\n[generator]\nwidth = 8\n")
    res = gan("train", "--plugin", "dcgan", "--config", "c.toml", "--quiet", "--out", "runs/t", *TINY_SETS[:2])
    assert res.exit_code == 0, res.output
    cfg = json.loads(Path("runs/t/config.json").read_text())
    assert cfg["train"]["steps"] == 1 and cfg["generator"]["width"] == 8


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--plugin", "dcgn"], r"unknown plugin 'dcgn'\. Did you mean 'dcgan'\? Known plugins: .*dcgan"),
        (["--plugin", "dcgan", "--set", "generator.depth=3"],
         r"unknown key 'depth'.*Valid keys: batchnorm, reference_seed, reference_size, virtual_batchnorm, width"),
        (["--plugin", "dcgan", "--set", "generator.width=wide"], r"width expects an integer, got 'wide'"),
        (["--plugin", "dcgan", "--steps", "0"], r"train.steps must be >= 1"),
        (["--plugin", "dcgan", "--seed", str(10**23)], r"seed must be a whole number from 0 to 4294967295"),
        (["--plugin", "dcgan", "--seed", "-1"], r"seed must be a whole number from 0 to 4294967295, got -1"),
        (["--plugin", "dcgan", "--dataset", "cifar-99"], r"unknown dataset 'cifar-99'"),
        (["--plugin", "dcgan", "--data-dir", "missing-folder"], r"does not exist.*dataset-fashion-mnist"),
        (["--plugin", "dcgan", "--data-dir", "."], r"FashionMNIST files not found.*apt-get install"),
        (["--plugin", "dcgan", "--device", "cuda:0"] if not __import__("torch").cuda.is_available() else
         ["--plugin", "dcgan", "--device", "tpu"], r"device"),
        (["--plugin", "dcgan", "--config", "nope.toml"], r"config file 'nope.toml' does not exist"),
        ([], r"choose what to train with --plugin"),
        (["--plugin", "dcgan", "--checkpoint", "3"], r"--checkpoint .* needs --resume"),
        (["--plugin", "dcgan", "--dataset", "ring"], r"generator 'dcgan': dcgan needs square images"),
        (["--plugin", "dcgan", "--set", "data.limit=4", "--batch-size", "8"],
         r"batch_size 8 is larger than the dataset"),
        (["--plugin", "dcgan", "--batch-size", "1"], r"batch_size 1 must divide .* at least 2 examples each"),
        (["--plugin", "dcgan", "--set", "train.ema=0.9", "--set", 'train.ema_nets=["generator","critic"]'],
         r"train\.ema_nets: this run has no network 'critic'; its networks are generator, discriminator"),
        (["--plugin", "gan2d", "--set", "discriminator.pack=3", "--batch-size", "8", "--set", "data.points=64"],
         r"does not divide into packs of 3"),
        (["--resume", "runs/none"], r"not a gancore run folder"),
        (["--plugin", "dcgan", "--out", ""], r"--out is empty; name the run folder to create, or leave --out off"),
        (["--plugin", "gan2d", "--set", "regularizers.r1.gamma=nan"], r"gamma must be a finite number, got nan"),
        (["--plugin", "dcgan", "--set", "train.lr_d=inf"], r"lr_d must be a finite number, got inf"),
        (["--plugin", "dcgan", "--set", "train.sample_count=100000000"], r"sample_count must be at most 4096"),
        (["--plugin", "dcgan", "--set", "train.lr_d=.9"], r"write the number with digits on both sides .* 0\.9$"),
        (["--plugin", "dcgan", "--dataset", "image-folder", "--set", "data.dir=[old] faces"],
         r"--data-dir '.*\[old\] faces' is not a folder"),  # a string option takes the text as typed
        (["--plugin", "gan2d", "--set", "train=5"], r"config key 'train' is a section; set its fields, e\.g\. "
                                                   r"--set train\.steps=500$"),
        (["--plugin", "gan2d", "--data-dir", "missing-folder"],  # gan2d reads no files; eval would look for it
         r"--data-dir '.*missing-folder' does not exist or is not a folder; dataset 'ring' reads no files from it"),
        (["--plugin", "gan2d", "--dataset", "cfg"],  # G's points fit D; the data's token ids do not
         r"discriminator 'mlp2d' cannot read the examples of dataset 'cfg' \(sequences of shape \(\d+,\), "
         r"torch.int64\): RuntimeError: .*dtype.*; pick a discriminator made for this data"),
    ],
)
def test_bad_train_input(args, pattern):
    res = gan("train", *args, "--quiet")
    one_line_error(res, pattern)
    assert not os.path.exists("runs") or os.listdir("runs") == []  # nothing created


def test_a_run_that_fails_in_its_first_step_leaves_no_folder_to_block_its_name():
    # a loss that needs a network the config lacks is found only when the first step runs it
    for _ in range(2):  # the same command again fails the same way, not on "already exists"
        res = gan("train", "--plugin", "gan2d", "--set", "loss.name=bigan", "--steps", "1", "--out", "runs/x",
                  "--quiet")
        assert res.exit_code == 2, res.output
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert lines[-1].startswith("error: loss bigan needs an encoder network"), res.stderr
        assert "gancore: note: removed runs/x: the run failed before its first step" in res.stderr
        assert not os.path.exists("runs/x")


def test_a_run_folder_without_a_checkpoint_is_not_offered_to_resume(tmp_path):
    res = gan("train", "--plugin", "gan2d", "--steps", "2", "--out", "runs/r", "--quiet")
    assert res.exit_code == 0, res.output
    shutil.rmtree("runs/r/checkpoints")  # as if it stopped before its first checkpoint
    one_line_error(gan("train", "--plugin", "gan2d", "--out", "runs/r", "--quiet"),
                   r"already exists and is never overwritten; choose another --out \(it has no checkpoint, so there "
                   r"is nothing to resume: unless it is still training, delete it to use the name again\)")


def test_an_existing_run_folder_is_never_overwritten():
    os.makedirs("runs/mine")
    Path("runs/mine/keep.txt").write_text("precious")
    res = gan("train", "--plugin", "dcgan", "--out", "runs/mine", "--quiet")
    one_line_error(res, r"already exists and is never overwritten; choose another --out \(it is not a run to resume\)")
    assert os.listdir("runs/mine") == ["keep.txt"]


def test_a_corrupt_checkpoint(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    data = (ckpt / "weights.safetensors").read_bytes()
    (ckpt / "weights.safetensors").write_bytes(data[: len(data) // 2])
    one_line_error(gan("train", "--resume", run, "--steps", "9"), r"corrupt or not a safetensors file")
    one_line_error(gan("sample", run), r"corrupt")
    one_line_error(gan("export", run), r"corrupt")
    assert not os.path.exists("exported/copy")


def test_a_run_description_without_its_data_facts(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    (run / "run.json").write_text("{}")  # JSON, but not what the run wrote
    for args in (("sample", run), ("export", run), ("eval", run), ("train", "--resume", run, "--steps", "9")):
        one_line_error(gan(*args), r"run description .*run\.json is corrupt \(no \"data\" object")
    assert not os.path.exists("exported/copy") and len(list((run / "checkpoints").iterdir())) == 2


def test_an_onnx_file_that_is_not_a_gancore_generator(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage")
    one_line_error(gan("sample", tmp_path / "x.onnx"), r"not a loadable ONNX model")


def test_export_twice_is_refused(trained_run):
    assert gan("export", trained_run, "--out", "e").exit_code == 0
    one_line_error(gan("export", trained_run, "--out", "e"), r"already exists.*--force")


def test_export_to_an_empty_out_is_refused_not_read_as_here(trained_run):
    one_line_error(gan("export", trained_run, "--out", "", "--force"),
                   r"--out is empty; name the folder to write, or leave --out off for exported/<run>")
    assert os.listdir(".") == []  # nothing written here, nor a temporary folder left


def test_a_bad_resume_blames_the_option_or_the_path_not_the_run(trained_run, tmp_path):
    one_line_error(gan("train", "--resume", trained_run, "--steps", "-4"), r"train\.steps must be >= 1, got -4$")
    one_line_error(gan("train", "--resume", trained_run, "--device", "tpu"), r"^error: unknown device 'tpu'; use auto")
    (tmp_path / "afile").write_text("x")
    one_line_error(gan("train", "--resume", tmp_path / "afile"), r"afile' is a file, not a gancore run folder")
    (tmp_path / "generator.pt2").write_bytes(b"PK")
    one_line_error(gan("sample", tmp_path / "generator.pt2"), r"is a PyTorch export, not a gancore run folder; "
                                                              r"load it with torch\.export\.load")


def test_an_unknown_name_names_the_setting_that_filtered_plugins_out(monkeypatch):
    from gancore.plugins import reset_manager

    monkeypatch.setenv("GANCORE_PLUGINS", "dcgn")
    reset_manager()
    try:
        res = gan("train", "--plugin", "dcgan", "--quiet")
        assert res.exit_code == 2
        warning, error = res.stderr.strip().splitlines()  # the filter matched nothing: said as it loads, then why
        assert warning.startswith("gancore: warning: GANCORE_PLUGINS names 'dcgn', which no installed plugin is "
                                  "called. Did you mean 'dcgan'?")
        assert re.fullmatch(r"error: unknown plugin 'dcgan'\. Known plugins: none \(plugin loading is restricted by "
                            r"GANCORE_PLUGINS=dcgn; unset it to load every installed plugin\)", error)
    finally:
        monkeypatch.delenv("GANCORE_PLUGINS")
        reset_manager()


def test_eval_of_a_dcgan_run_prints_figures_beside_their_ceilings(trained_run, monkeypatch):
    from gancore.builtin.image_metrics import FashionQuality

    monkeypatch.setattr(FashionQuality, "samples", 500)  # the protocol's 5000 costs ~10 s more on 2 cores
    res = gan("eval", trained_run)
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines()[2:]}
    assert len(rows["fashion-quality/frechet"]) == 2 and len(rows["fashion-quality/score"]) == 2
    assert float(rows["fashion-quality/frechet"][0]) > float(rows["fashion-quality/frechet"][1])
    assert (trained_run / "curves.png").exists()
    # the optional Inception FID/KID is skipped here (no weights offline, or no extra), with a note saying why
    assert f"inception-fid: skipped; {inception.unavailable()}" in res.stderr


@needs_fidelity
def test_eval_of_a_metric_that_cannot_run_here_says_what_is_missing(trained_run, monkeypatch, tmp_path):
    monkeypatch.setenv("GANCORE_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pth"))
    one_line_error(gan("eval", trained_run, "--metric", "inception-fid"),
                   r"metric 'inception-fid' cannot run here: .*nowhere\.pth.*GANCORE_INCEPTION_WEIGHTS")


def test_eval_of_an_exported_onnx_generator(exported, monkeypatch, tmp_path):
    import shutil

    from gancore.builtin.image_metrics import FashionQuality

    monkeypatch.setattr(FashionQuality, "samples", 500)
    model = tmp_path / "generator.onnx"
    shutil.copy(exported / "generator.onnx", model)  # the shared export stays as it is
    res = gan("eval", model)
    assert res.exit_code == 0, res.output
    assert "fashion-quality/frechet" in res.stdout
    assert "at step 6 (onnxruntime on CPUExecutionProvider)" in res.stdout  # the provider really used
    report = json.loads((tmp_path / "generator.eval.json").read_text())
    assert report["step"] == 6 and report["results"]["fashion-quality/classes"] == 10.0
    assert report["provider"] == "CPUExecutionProvider"


def test_eval_reads_real_images_from_data_dir(exported, trained_run, torchvision_root_only, monkeypatch, tmp_path):
    import shutil

    from gancore.builtin.image_metrics import FashionQuality

    monkeypatch.setattr(FashionQuality, "samples", 200)
    model = tmp_path / "generator.onnx"
    shutil.copy(exported / "generator.onnx", model)
    one_line_error(gan("eval", model, "--metric", "fashion-quality"), r"FashionMNIST files not found")
    res = gan("eval", model, "--metric", "fashion-quality", "--data-dir", str(torchvision_root_only))
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    res = gan("eval", run, "--metric", "fashion-quality", "--data-dir", str(torchvision_root_only))
    assert res.exit_code == 0, res.output
    assert "at step 6 (PyTorch on cpu)" in res.stdout
    one_line_error(gan("eval", run, "--metric", "fashion-quality", "--data-dir", str(tmp_path / "nope")),
                   r"--data-dir .*nope' does not exist")


def test_eval_that_cannot_write_its_curves_keeps_the_scores(trained_run, monkeypatch):
    import errno

    from gancore import plots
    from gancore.builtin.image_metrics import FashionQuality

    def full(*_args, **_kw):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(FashionQuality, "samples", 500)
    monkeypatch.setattr(plots, "curves", full)
    res = gan("eval", trained_run, "--metric", "fashion-quality")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.search(r"error: could not write .*curves\.png: File too large; the scores are saved in .*eval/step-",
                     res.stderr), res.stderr


def test_eval_with_a_metric_that_fails_prints_and_saves_the_others_and_exits_1(gan2d_run, monkeypatch):
    with_broken_metric(monkeypatch)
    res = gan("eval", gan2d_run)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "modes/modes_total" in res.stdout
    assert "error: metric 'broken' failed: RuntimeError: boom; the other scores are saved" in res.stderr
    with_broken_metric(monkeypatch, only=True)
    one_line_error(gan("eval", gan2d_run), r"^error: metric 'broken' failed: RuntimeError: boom$")


def test_eval_refuses_a_missing_data_dir_even_where_no_metric_reads_data(gan2d_run, tmp_path):
    one_line_error(gan("eval", gan2d_run, "--metric", "modes", "--data-dir", tmp_path / "nope"),
                   r"--data-dir '.*nope' does not exist or is not a folder")


def test_a_folder_named_like_a_model_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    for command in ("sample", "eval"):
        one_line_error(gan(command, tmp_path / "dir.onnx"), r"dir\.onnx' is a folder, not an ONNX model file")


def test_eval_with_a_metric_that_does_not_fit(trained_run):
    one_line_error(gan("eval", trained_run, "--metric", "modes"), r"metric 'modes' does not fit this run")


def test_sample_into_a_folder_is_a_clear_error(trained_run, tmp_path):
    one_line_error(gan("sample", trained_run, "-o", tmp_path), r"sample grids are PNG files; give a name ending")
    (tmp_path / "dir.png").mkdir()
    one_line_error(gan("sample", trained_run, "-o", tmp_path / "dir.png"), r"exists and is not a PNG picture")


def test_install_needs_a_package():
    one_line_error(gan("install"), r"name a package")


def test_uninstall_without_a_terminal_needs_yes():
    one_line_error(gan("uninstall", "gan-plugin-nothing"), r"no terminal to answer on; pass -y")  # CliRunner: no tty


def test_ctrl_c_during_training_says_which_checkpoint_is_kept_and_how_to_go_on(monkeypatch):
    import gancore.loop

    real = gancore.loop.train

    def interrupted(state, progress=True):  # trains `stop` of the run's steps, then Ctrl-C
        total = state.config["train"]["steps"]
        if stop:
            state.config["train"]["steps"] = stop
            real(state, progress=progress)  # checkpoints every 2 steps
            state.config["train"]["steps"] = total
        raise KeyboardInterrupt

    monkeypatch.setattr(gancore.loop, "train", interrupted)
    stop = 4
    res = gan("train", "--plugin", "dcgan", "--steps", "6", "--out", "runs/c", *TINY_SETS)
    assert res.exit_code == 130
    assert res.stderr.strip().splitlines()[-1] == ("interrupted at step 4; its last checkpoint, step-0000004, is "
                                                   "intact: continue with gan train --resume runs/c")
    stop = 6
    res = gan("train", "--plugin", "dcgan", "--steps", "6", "--out", "runs/d", *TINY_SETS)
    assert res.exit_code == 130 and res.stderr.strip().splitlines()[-1] == (
        "interrupted after the last step: the run is complete (step-0000006); train it further with "
        "gan train --resume runs/d --steps N")
    stop = 0
    res = gan("train", "--plugin", "dcgan", "--steps", "9", "--out", "runs/e", *TINY_SETS,
              "--set", "train.checkpoint_every=50")
    assert res.exit_code == 130 and "before the first checkpoint (train.checkpoint_every 50): nothing to resume; " \
                                    "train again with another --out, or delete runs/e first" in res.stderr


def test_a_broken_third_party_hook_is_named_and_leaves_no_run_behind(fake_site, monkeypatch):
    from tests.conftest import make_dist
    from tests.fake_plugins import TRAINING_HOOK_RAISES

    make_dist(fake_site, "fake-logger", {"logger": "fake_logger"}, {"fake_logger": TRAINING_HOOK_RAISES})
    tiny = ["--steps", "2", "--quiet", "--batch-size", "8", "--set", "data.points=64"]
    monkeypatch.setenv("FAKE_HOOK", "start")  # its hook runs for every run, here a gan2d one
    res = gan("train", "--plugin", "gan2d", *tiny, "--out", "runs/r")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.fullmatch(r"error: plugin 'logger' failed in gan_train_start \(fake_logger.py:8\): RuntimeError: "
                        r"the logging service is down; GANCORE_PLUGINS=<plugins to load> leaves it out; "
                        r"GANCORE_TRACEBACK=1 shows the traceback", res.stderr.strip().splitlines()[-1])
    assert not os.path.exists("runs/r") and "removed runs/r" in res.stderr  # failed in its first step
    one_line_error(gan("train", "--plugin", "listed", *tiny),
                   r"^error: recipe 'listed' of plugin 'logger' returned a list, expected a config dict")
    one_line_error(gan("train", "--plugin", "misspelt", *tiny),
                   r"^error: recipe 'misspelt' of plugin 'logger': unknown config key 'genrator'.*'generator'")
    one_line_error(gan("train", "--plugin", "deep", *tiny),  # a key inside a section: the recipe's, not the user's
                   r"^error: recipe 'deep' of plugin 'logger': unknown key 'step' for train\. Did you mean 'steps'\?")
    monkeypatch.setenv("GANCORE_TRACEBACK", "1")  # a plugin author's view: the traceback, then the same line
    res = gan("train", "--plugin", "gan2d", *tiny, "--out", "runs/r")
    assert res.exit_code == 2 and "Traceback (most recent call last)" in res.stderr and "fake_logger.py" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: plugin 'logger' failed in gan_train_start")
    monkeypatch.delenv("GANCORE_TRACEBACK")
    monkeypatch.setenv("FAKE_HOOK", "")
    assert gan("train", "--plugin", "gan2d", *tiny, "--out", "runs/r").exit_code == 0
    monkeypatch.setenv("FAKE_HOOK", "export")
    one_line_error(gan("export", "runs/r", "--out", "e"),
                   r"^error: plugin 'logger': gan_export_extra returned list \['not', 'a', 'dict'\], expected None or "
                   r"\{file stem: gancore.components.ExportModel\}; nothing was exported")
    assert not os.path.exists("e")
