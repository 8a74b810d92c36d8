"""Faults: SIGKILL at any point, NaN/Inf, a full disk, an unwritable folder, hostile files and plugins.

Each test fails without the protection it names (see the README's reliability table).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gancore.components import Regularizer
from gancore.errors import CheckpointError, ConfigError, ExportError, GanError
from gancore.health import DivergenceError
from gancore.loop import prepare, prepare_resume, train
from gancore.plugins import build_manager, hookimpl
from gancore.runs import open_run
from tests.conftest import make_dist, tiny
from tests.fake_plugins import WRONG_SHAPE

# A model big enough that a checkpoint write takes a while, so a kill can land inside one.
KILL_ARGS = ["train", "--plugin", "dcgan", "--batch-size", "8", "--device", "cpu", "--quiet",
             "--set", "data.limit=256", "--set", "train.log_every=1", "--set", "train.checkpoint_every=3",
             "--set", "train.sample_every=100", "--set", "generator.width=64", "--set", "discriminator.width=64"]


def gan_proc(*args: str, cwd: Path, limit_bytes: int | None = None) -> subprocess.Popen:
    def limit() -> None:
        if limit_bytes is not None:  # Python ignores SIGXFSZ, so an over-large write fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([sys.executable, "-m", "gancore_cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit)


def losses(run: Path) -> list[tuple]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(x["step"], x["d_adv"], x["g_adv"]) for x in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    cwd = tmp_path_factory.mktemp("ref")
    p = gan_proc(*KILL_ARGS, "--steps", "12", "--out", "run", cwd=cwd)
    assert p.wait() == 0, p.stderr.read()
    return losses(cwd / "run")


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if predicate():
            return True
    return False


def kill_when(tmp_path: Path, predicate) -> tuple[Path, bool]:
    """Start a run, SIGKILL it as soon as ``predicate(run)`` holds; return the run and whether it held."""
    run = tmp_path / "run"
    p = gan_proc(*KILL_ARGS, "--steps", "12", "--out", "run", cwd=tmp_path)
    hit = wait_for(lambda: predicate(run), p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return run, hit


def _writing(run: Path) -> bool:
    root = run / "checkpoints"
    try:
        return any(x.startswith(".tmp-") for x in os.listdir(root))
    except FileNotFoundError:
        return False


def _logged(step: int):
    def pred(run: Path) -> bool:
        try:
            return f'"step": {step},' in (run / "metrics.jsonl").read_text()
        except FileNotFoundError:
            return False

    return pred


@pytest.mark.parametrize("point", ["before-first-checkpoint", "between-checkpoints", "mid-checkpoint-write"])
def test_sigkill_anywhere_then_resume_reproduces_the_uninterrupted_run(point, reference, tmp_path):
    if point == "before-first-checkpoint":
        pred = _logged(1)
    elif point == "between-checkpoints":
        pred = _logged(5)
    else:  # inside the second checkpoint's write, so a complete one exists to resume from
        def pred(run: Path) -> bool:
            return _writing(run) and (run / "checkpoints" / "step-0000003").exists()
    for _attempt in range(3):  # a kill can lose the race with the rename; then try again
        run, hit = kill_when(tmp_path, pred)
        if point == "mid-checkpoint-write":
            hit = hit and _writing(run)  # the half-written folder is still there: the kill landed inside
        if hit:
            break
        shutil.rmtree(run)
    assert hit, f"could not kill at {point}"
    r = gan_proc("train", "--resume", "run", "--quiet", cwd=tmp_path)
    _, err = r.communicate()
    if point == "before-first-checkpoint":  # nothing to resume from: a clear error, nothing else
        assert r.returncode == 2 and "no complete checkpoint yet" in err, err
        return
    assert r.returncode == 0, err
    assert losses(run) == reference
    assert not [x for x in os.listdir(run / "checkpoints") if x.startswith(".")]  # debris cleared on resume


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_checkpoints_the_step_and_the_resume_reproduces_the_uninterrupted_run(signum, reference,
                                                                                                tmp_path):
    for _attempt in range(3):  # the run can finish before the signal lands; then try again
        p = gan_proc(*KILL_ARGS, "--steps", "12", "--out", "run", cwd=tmp_path)
        wait_for(lambda: _logged(4)(tmp_path / "run"), p)
        p.send_signal(signum)
        _, err = p.communicate()
        if p.returncode != 0:
            break
        shutil.rmtree(tmp_path / "run")
    assert p.returncode == 128 + signum, err
    line = err.strip().splitlines()[-1]
    step = int(line.split(" at step ")[1].split(";")[0])
    assert line == (f"stopped by {signal.Signals(signum).name} at step {step}; wrote its checkpoint, "
                    f"step-{step:07d}: continue with gan train --resume run")
    assert (tmp_path / "run" / "checkpoints" / f"step-{step:07d}").is_dir()
    r = gan_proc("train", "--resume", "run", "--quiet", cwd=tmp_path)
    _, err = r.communicate()
    assert r.returncode == 0, err
    assert losses(tmp_path / "run") == reference


def test_a_closed_terminal_stops_the_run_politely_and_the_resume_reproduces_it(reference, tmp_path):
    import pty
    import select

    args = [a for a in KILL_ARGS if a != "--quiet"]  # progress and messages on the terminal, as a user sees them
    for _attempt in range(3):  # the run can finish before the hang-up lands; then try again
        pid, terminal = pty.fork()  # the child leads a session on its own terminal, as a login shell would
        if pid == 0:
            os.chdir(tmp_path)
            os.execv(sys.executable, [sys.executable, "-m", "gancore_cli", *args, "--steps", "12", "--out", "run"])
        end = time.monotonic() + 60
        while time.monotonic() < end and not _logged(4)(tmp_path / "run"):
            if select.select([terminal], [], [], 0.05)[0]:
                try:
                    os.read(terminal, 65536)  # keep the terminal drained, as a terminal window does
                except OSError:
                    break
        os.close(terminal)  # the window closes: the kernel hangs the terminal up and sends SIGHUP
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)  # and the shell passes its own on
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code != 0:
            break
        shutil.rmtree(tmp_path / "run")
    assert code == 128 + signal.SIGHUP  # not killed by the second SIGHUP, nor by a write to the closed terminal
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = log[-1]["step"]
    assert step < 12 and (tmp_path / "run" / "checkpoints" / f"step-{step:07d}").is_dir()
    r = gan_proc("train", "--resume", "run", "--quiet", cwd=tmp_path)
    _, err = r.communicate()
    assert r.returncode == 0, err
    assert losses(tmp_path / "run") == reference


class Poison(Regularizer):
    """Adds a NaN to the G loss once, at step ``at_step``."""

    phases = ("generator",)

    def __init__(self, at_step: int) -> None:
        self.at_step, self.fired = at_step, False

    def __call__(self, step):
        if step.step + 1 == self.at_step and not self.fired:
            self.fired = True
            return {"poison": torch.tensor(float("nan"))}
        return {"poison": torch.zeros(())}


def nan_run(at_step, on_nan="stop", steps=8, max_rollbacks=3, out="runs/nan"):
    class Plugin:
        @hookimpl
        def gan_register_regularizers(self, register):
            register("poison", lambda: Poison(at_step))

    mgr = build_manager(extra=[("poison", Plugin())])
    cfg = tiny(train={"steps": steps, "checkpoint_every": 2, "log_every": 4, "on_nan": on_nan,
                      "max_rollbacks": max_rollbacks}, regularizers={"poison": {}})
    return prepare("dcgan", cfg, out=out, mgr=mgr)


def test_a_nan_loss_stops_naming_the_step_and_term_and_keeps_the_last_good_checkpoint():
    state = nan_run(at_step=5)
    with pytest.raises(DivergenceError, match=r"loss term 'poison' became NaN or Inf at step 5; "
                                              r"the last good checkpoint is .*step-0000004\. Go on with gan train "
                                              r"--resume .*runs/nan --on-nan rollback"):
        train(state, progress=False)
    ckpts = sorted(p.name for p in (state.run_dir / "checkpoints").iterdir())
    assert ckpts == ["step-0000002", "step-0000004"]  # nothing written after the NaN
    good = open_run(state.run_dir, mgr=state.manager)
    assert all(torch.isfinite(p).all() for m in good.nets.named().values() for p in m.parameters())


def test_nan_weights_are_caught_before_a_checkpoint_is_written():
    # An extra network no loss reads, corrupted after the first checkpoint: only the weight check can see it.
    class Plugin:
        @hookimpl
        def gan_register_networks(self, register):
            register("idle", lambda **ctx: torch.nn.Linear(2, 2))

        @hookimpl
        def gan_train_checkpoint(self, state, path):
            with torch.no_grad():
                state.nets.extra["idle"].weight.fill_(float("inf"))

    mgr = build_manager(extra=[("idle", Plugin())])
    cfg = tiny(train={"steps": 8, "checkpoint_every": 2, "log_every": 1}, networks={"idle": {"name": "idle"}})
    state = prepare("dcgan", cfg, out="runs/w", mgr=mgr)
    with pytest.raises(DivergenceError, match=r"idle weights became NaN or Inf at step 4; .*step-0000002"):
        train(state, progress=False)
    assert sorted(p.name for p in (state.run_dir / "checkpoints").iterdir()) == ["step-0000002"]


def test_rollback_reloads_the_last_good_checkpoint_lowers_the_lr_and_finishes():
    state = train(nan_run(at_step=5, on_nan="rollback"), progress=False)
    assert state.step == 8
    log = [json.loads(x) for x in (state.run_dir / "metrics.jsonl").read_text().splitlines()]
    events = [x for x in log if x.get("event") == "rollback"]
    assert events == [{"step": 4, "event": "rollback", "nonfinite": "loss term 'poison'", "at_step": 5,
                       "lr_g": 1e-4, "lr_d": 1e-4}]
    assert state.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert [x["step"] for x in log if "d_adv" in x] == [4, 8]
    saved = json.loads((state.run_dir / "checkpoints" / "step-0000008" / "state.json").read_text())
    assert saved["rollbacks"] == 1  # a resume keeps counting towards max_rollbacks


def test_a_stopped_run_goes_on_with_resume_and_on_nan_rollback():
    state = nan_run(at_step=5, steps=6)
    with pytest.raises(DivergenceError, match=r"--resume .*runs/nan --on-nan rollback"):
        train(state, progress=False)
    mgr = state.manager  # the poison plugin, which fires once more in the resumed process
    resumed = prepare_resume(state.run_dir, on_nan="rollback", mgr=mgr)
    assert resumed.step == 4 and resumed.config["train"]["on_nan"] == "rollback"
    assert json.loads((state.run_dir / "config.json").read_text())["train"]["on_nan"] == "rollback"  # saved
    assert train(resumed, progress=False).step == 6
    log = [json.loads(x) for x in (state.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["at_step"] for x in log if x.get("event") == "rollback"] == [5]


def test_rollback_with_max_rollbacks_0_says_none_was_tried():
    with pytest.raises(DivergenceError, match=r"train\.max_rollbacks is 0, so no rollback was tried, stopping"):
        train(nan_run(at_step=5, on_nan="rollback", max_rollbacks=0), progress=False)


def test_rollback_without_a_checkpoint_stops():
    with pytest.raises(DivergenceError, match=r"nothing to roll back to"):
        train(nan_run(at_step=1, on_nan="rollback"), progress=False)
    with pytest.raises(DivergenceError, match=r"no checkpoint was written before it\. Train anew with lower learning "
                                              r"rates .* or with --on-nan rollback and a checkpoint before this step"):
        train(nan_run(at_step=1, out="runs/stop"), progress=False)  # no --resume offered: nothing to resume from


def test_a_full_disk_mid_run_is_a_clear_error_and_the_previous_checkpoint_survives(tmp_path):
    p = gan_proc(*KILL_ARGS, "--steps", "3", "--out", "run", cwd=tmp_path)
    assert p.wait() == 0
    # Resume with a 200 kB file-size limit: the log and samples fit, the next checkpoint does not.
    p = gan_proc("train", "--resume", "run", "--steps", "6", "--quiet", cwd=tmp_path, limit_bytes=200_000)
    _, err = p.communicate()
    assert p.returncode == 2, err
    assert "could not write checkpoint" in err and "previous checkpoint is intact" in err
    ckpts = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert ckpts == ["step-0000003"]  # no half-written folder left
    p = gan_proc("train", "--resume", "run", "--steps", "6", "--quiet", cwd=tmp_path)
    assert p.wait() == 0, p.stderr.read()


def test_a_small_tmpfs_fills_up(tmp_path):
    # Size the disk for one and a half checkpoints (keep_checkpoints is 3): the second write runs out of space.
    probe = gan_proc(*KILL_ARGS, "--steps", "3", "--out", "probe", cwd=tmp_path)
    assert probe.wait() == 0
    one = sum(f.stat().st_size for f in (tmp_path / "probe" / "checkpoints" / "step-0000003").iterdir())
    mnt = tmp_path / "small"
    mnt.mkdir()
    size = int(one * 1.5) + 256 * 1024
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        p = gan_proc(*KILL_ARGS, "--steps", "12", "--out", str(mnt / "run"), cwd=tmp_path)
        _, err = p.communicate()
        assert p.returncode == 2, err
        assert "No space left on device" in err and "previous checkpoint is intact" in err
        assert sorted(os.listdir(mnt / "run" / "checkpoints")) == ["step-0000003"]  # no half-written folder
        assert open_run(mnt / "run").step == 3  # the previous checkpoint is intact and loads
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_an_unwritable_output_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot create run folder.*choose a writable --out"):
        prepare("dcgan", tiny(), out="/dev/null/run")


def _safetensors(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack("<Q", 2**62) + b"{}",  # a header length far beyond the file
        _safetensors(b'{"generator.w": {"dtype": "F32", "shape": [1000000000], "data_offsets": [0, 4000000000]}}'),
        _safetensors(b'{"generator.w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
                     b' "generator.v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}', b"\0" * 12),
        _safetensors(b'{"generator.w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}', b"\0" * 8),
        _safetensors(b"not json at all"),
    ],
    ids=["huge-header", "huge-tensor", "overlapping-offsets", "shape-size-mismatch", "bad-json"],
)
def test_hostile_safetensors_headers_are_refused(trained_run, tmp_path, payload):
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    (ckpt / "weights.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        open_run(run)


def test_an_onnx_whose_graph_inputs_disagree_with_its_metadata(exported, tmp_path):
    import onnx

    from gancore.deploy import OnnxModel

    model = onnx.load(str(exported / "generator.onnx"))
    for p in model.metadata_props:
        if p.key == "gancore.inputs":
            p.value = json.dumps([{"name": "noise", "shape": [64], "dtype": "float32", "distribution": "normal"}])
    onnx.save(model, str(tmp_path / "lies.onnx"))
    with pytest.raises(ExportError, match=r"graph input .noise. is tensor\(float\).*metadata says float32"):
        OnnxModel(tmp_path / "lies.onnx")
    for p in model.metadata_props:
        if p.key == "gancore.inputs":
            p.value = json.dumps([{"name": "z", "shape": [100], "dtype": "float32", "distribution": "normal"}])
    onnx.save(model, str(tmp_path / "renamed.onnx"))
    with pytest.raises(ExportError, match="do not match its metadata"):
        OnnxModel(tmp_path / "renamed.onnx")


def test_a_component_with_the_wrong_output_shape_is_caught_at_start(fake_site):
    make_dist(fake_site, "fake-shape", {"shape": "fake_shape"}, {"fake_shape": WRONG_SHAPE})
    mgr = build_manager()
    with pytest.raises(GanError, match=r"generator .wrong-shape. of plugin .shape. returned \(8, 1, 32, 32\), "
                                       r"expected \(8, 1, 28, 28\)"):
        prepare("dcgan", tiny(generator={"name": "wrong-shape"}), out="runs/shape", mgr=mgr)
    assert not os.path.exists("runs/shape")


def test_a_config_file_with_wrong_types_unknown_keys_and_bad_ranges(tmp_path):
    from gancore.config import load_toml
    from gancore.plugins import get_manager
    from gancore.resolve import resolve_config

    cases = {
        "[train]\nsteps = 'many'\n": "steps expects an integer",
        "[train]\nstepz = 3\n": "unknown key 'stepz'.*Did you mean 'steps'",
        "[train]\nbeta1 = 1.5\n": r"beta1 must be in \[0, 1\)",
        "[train]\non_nan = 'ignore'\n": "on_nan must be one of 'stop', 'rollback'",
        "[generator]\nwidth = -4\n": r"width must be in \[4, 1024\]",
        "seed = [1]\n": "seed expects an integer",
        "train = 3\n": "is a section",
        "[train\n": "not valid TOML",
    }
    for text, message in cases.items():
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError, match=message):
            resolve_config(get_manager(), "dcgan", load_toml(tmp_path / "c.toml"))
