"""Data-parallel training with 2 CPU processes (gloo): ranks stay in sync on their own shards, rank 0 writes
single-process checkpoints, and runs move between 1 and 2 processes both ways."""

import json
import os
import subprocess
import sys
from pathlib import Path

from gancore.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--device", "cpu", "--set", "data.limit=128", "--set", "generator.width=8", "--set", "discriminator.width=8",
        "--set", "train.log_every=2", "--set", "train.checkpoint_every=3", "--set", "train.sample_every=3",
        "--set", "train.sample_count=4", "--batch-size", "16", "--quiet"]


def gan(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gancore_cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


def test_two_processes_stay_in_sync_on_their_own_shards(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(ROOT / "tests" / "ddp_worker.py"), str(out)], capture_output=True, text=True,
                         env=ENV, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report == {"world": 2, "in_sync": True, "shards_differ": True, "noise_differs": True, "examples": 64,
                      "run_dir": str(out)}
    ckpts = list_checkpoints(out / "checkpoints")
    assert [c.name for c in ckpts] == ["step-0000003", "step-0000006"]  # written once, by rank 0
    assert json.loads((ckpts[-1] / "state.json").read_text())["world_size"] == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]  # one log, not one per process


def test_gan_train_nproc_then_resume_in_one_process_and_back(tmp_path):
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--steps", "3", "--out", "runs/ddp", *TINY,
              "--set", "regularizers.r1.gamma=1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Grad strides" not in res.stderr  # R1 on D's one-channel first conv: DDP's false alarm stays quiet
    assert res.stdout.strip().splitlines() == ["runs/ddp"]  # printed once, by rank 0
    assert "2 processes" in res.stderr
    res = gan("train", "--resume", "runs/ddp", "--steps", "6", cwd=tmp_path)  # a DDP checkpoint, one process
    assert res.returncode == 0, res.stderr[-3000:]
    res = gan("train", "--resume", "runs/ddp", "--steps", "9", "--nproc", "2", cwd=tmp_path)  # and back to two
    assert res.returncode == 0, res.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (tmp_path / "runs/ddp/metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6, 8, 9]
    meta = json.loads((tmp_path / "runs/ddp/checkpoints/step-0000009/state.json").read_text())
    assert meta["step"] == 9 and meta["world_size"] == 2


def test_a_batch_that_does_not_divide_over_the_processes_is_refused(tmp_path):
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--steps", "3", *TINY[:-3], "--batch-size", "15",
              cwd=tmp_path)
    assert res.returncode == 2
    # refused once, before torchrun starts the processes: one line, not a report per process
    assert res.stderr.strip().splitlines() == ["error: train.batch_size 15 must divide evenly over 2 processes, "
                                               "at least 2 examples each"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_input_to_nproc_is_refused_in_one_line_before_torchrun_starts(tmp_path):
    res = gan("train", "--plugin", "dcgn", "--nproc", "2", *TINY, cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: unknown plugin 'dcgn'. Did you mean 'dcgan'?")
    assert len(res.stderr.strip().splitlines()) == 1 and "torch" not in res.stderr
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--data-dir", str(tmp_path / "none"), *TINY, cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "does not exist" in res.stderr
    assert gan("train", "--plugin", "dcgan", "--steps", "2", "--out", "runs/a", *TINY, cwd=tmp_path).returncode == 0
    res = gan("train", "--resume", "runs/a", "--nproc", "2", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: run runs/a already reached step 2 of 2; pass --steps N (N > 2) to train further"]
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--out", "runs/a", *TINY, cwd=tmp_path)
    assert res.returncode == 2 and "already exists and is never overwritten" in res.stderr
    os.mkfifo(tmp_path / "cfg")  # as --config <(...) gives: each worker would read it again, and find it empty
    res = gan("train", "--plugin", "dcgan", "--nproc", "2", "--config", tmp_path / "cfg", *TINY, cwd=tmp_path)
    assert res.returncode == 2 and "is a pipe, which the 2 training processes cannot each read" in res.stderr


def test_an_error_inside_the_workers_is_one_line_with_the_workers_exit_code(tmp_path):
    # found only once training runs, in every process: rank 0 alone says it, and torchrun's report is not printed
    res = gan("train", "--plugin", "gan2d", "--nproc", "2", "--steps", "6", "--out", "runs/nan", "--quiet",
              "--set", "regularizers.r1.gamma=1e300", cwd=tmp_path)
    lines = [x for x in res.stderr.splitlines() if x.strip() and not x.startswith("run folder:")]
    assert res.returncode == 3 and len(lines) == 1, res.stderr  # 3: diverged, as in one process
    assert lines[0].startswith("error: training diverged: loss term 'd_r1' became NaN or Inf")


def test_a_signal_to_the_launcher_alone_stops_torchrun_and_its_workers(tmp_path):
    import signal
    import time

    cmd = [sys.executable, "-m", "gancore_cli", "train", "--plugin", "gan2d", "--nproc", "2", "--steps", "1000000",
           "--out", "runs/long", "--quiet"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "runs" / "long" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and log.read_text()) and time.time() < deadline:  # training under way
        time.sleep(0.5)
    try:
        proc.send_signal(signal.SIGTERM)  # to the launcher alone, not its process group
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "stopped by signal 15; every checkpoint written is intact" in err and "Traceback" not in err
        time.sleep(1)
        assert not _running(str(tmp_path)), "workers left training after the launcher stopped"
    finally:  # a failure must not leave a million-step run behind
        for pid in _running(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)


def _running(needle: str) -> list[int]:
    """Live processes whose command line or working folder mentions ``needle`` (from /proc: no procps needed)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = os.readlink(proc / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours
        if int(proc.name) != os.getpid() and (needle in text or where.startswith(needle)):
            found.append(int(proc.name))
    return found
