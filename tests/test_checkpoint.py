"""Checkpoints: atomic writes, keep-last-N, and corrupt or hostile files."""

import json
import os
import pickle
import shutil

import pytest

from gancore import checkpoint
from gancore.checkpoint import list_checkpoints, save_checkpoint
from gancore.errors import CheckpointError
from gancore.loop import prepare, prepare_resume, train
from gancore.runs import open_run
from tests.conftest import tiny


@pytest.fixture
def run():
    return train(prepare("dcgan", tiny(), out="runs/c"), progress=False)


def test_keeps_only_the_newest_n(run):
    for step in (7, 8, 9):
        run.step = step
        save_checkpoint(run, run.run_dir / "checkpoints", keep=2)
    assert [p.name for p in list_checkpoints(run.run_dir / "checkpoints")] == ["step-0000008", "step-0000009"]


def test_a_crash_mid_write_leaves_the_previous_checkpoint_and_no_debris(run, monkeypatch):
    root = run.run_dir / "checkpoints"
    before = {p.name: sorted(f.name for f in p.iterdir()) for p in list_checkpoints(root)}

    def dies(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", dies)
    run.step = 7
    with pytest.raises(CheckpointError, match=r"No space left on device.*previous checkpoint is intact"):
        save_checkpoint(run, root, keep=3)
    assert {p.name: sorted(f.name for f in p.iterdir()) for p in list_checkpoints(root)} == before
    assert sorted(os.listdir(root)) == sorted(before)  # no temporary folder left behind
    with pytest.raises(CheckpointError, match=r"No space left on device; no checkpoint was written before it, so "
                                              r"there is nothing to resume\."):  # the first one: none to fall back on
        save_checkpoint(run, run.run_dir / "fresh", keep=3)


def test_a_temporary_folder_is_never_taken_for_a_checkpoint(run):
    root = run.run_dir / "checkpoints"
    shutil.copytree(root / "step-0000006", root / ".tmp-step-0000009-123")
    assert list_checkpoints(root)[-1].name == "step-0000006"


def test_a_truncated_checkpoint_is_a_clear_error(run):
    weights = run.run_dir / "checkpoints" / "step-0000006" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        open_run(run.run_dir)
    with pytest.raises(CheckpointError, match="corrupt"):
        prepare_resume(run.run_dir, steps=10)


def test_corrupt_state_json(run):
    (run.run_dir / "checkpoints" / "step-0000006" / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON"):
        prepare_resume(run.run_dir, steps=10)


class Payload:
    def __reduce__(self):
        return (open, ("PWNED", "w"))


def test_a_pickle_disguised_as_a_checkpoint_is_never_executed(run):
    ckpt = run.run_dir / "checkpoints" / "step-0000006"
    for name in ("weights.safetensors", "training.safetensors"):
        (ckpt / name).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        prepare_resume(run.run_dir, steps=10)
    with pytest.raises(CheckpointError):
        open_run(run.run_dir)
    assert not os.path.exists("PWNED")


def test_a_run_saved_with_a_seed_new_runs_refuse_still_opens(run):
    import json

    cfg_path = run.run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["seed"] = -1  # older versions let torch.manual_seed take it
    cfg_path.write_text(json.dumps(cfg))
    assert open_run(run.run_dir).config["seed"] == -1


def test_weights_of_another_architecture_are_refused(run):
    import json

    cfg_path = run.run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["generator"]["width"] = 16
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"does not fit this run's generator: size mismatch for .*another run"):
        open_run(run.run_dir)


def trained_with_lsgan(run, *, components: bool = True) -> None:
    """Make ``run`` read as one whose generator came from the lsgan plugin (not installed here); a plugin that
    was only loaded at the time, other-0.2, built none of it."""
    config, meta = run / "config.json", run / "run.json"
    config.write_text(config.read_text().replace('"name": "mlp2d"', '"name": "mlp"', 1))
    info = {**json.loads(meta.read_text()), "plugins": {"gan2d": "1", "lsgan": "0.1.0", "other": "0.2"}}
    if components:
        info["components"]["generator"] = {"name": "mlp", "plugin": "lsgan"}
    else:
        del info["components"]  # as runs written before gancore recorded them
    meta.write_text(json.dumps(info))


@pytest.mark.parametrize("components, listed", [(True, r"lsgan 0\.1\.0"), (False, r"lsgan 0\.1\.0, other 0\.2")])
def test_a_run_whose_plugin_is_gone_says_which_to_install(gan2d_run, components, listed):
    trained_with_lsgan(gan2d_run, components=components)
    with pytest.raises(CheckpointError, match=rf"unknown generator 'mlp'.*The run was trained with plugins not "
                                              rf"loaded here: {listed}; install them"):
        open_run(gan2d_run)


def test_a_run_whose_plugin_is_filtered_out_says_to_lift_the_filter_not_to_install(gan2d_run, monkeypatch):
    trained_with_lsgan(gan2d_run)
    monkeypatch.setenv("GANCORE_PLUGINS", "gan2d")
    with pytest.raises(CheckpointError, match=r"not loaded here: lsgan 0\.1\.0; plugin loading is restricted by "
                                              r"GANCORE_PLUGINS=gan2d: unset it, or add the plugins the run needs$"):
        open_run(gan2d_run)
