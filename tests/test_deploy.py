"""Deployment needs onnxruntime and numpy only: the example script runs with torch and gancore unimportable."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_dist
from tests.fake_plugins import COMMAND, COMMAND_BUG, HIJACKS_UNINSTALL

ROOT = Path(__file__).resolve().parents[1]

GUARD = """
import runpy, sys
sys.modules["torch"] = None          # any import of torch now fails
sys.modules["gancore"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _example(model: Path, n: int, out: Path) -> subprocess.CompletedProcess:
    """examples/deploy_onnx.py on ``model``, with torch and gancore unimportable; checked to exit 0."""
    res = subprocess.run([sys.executable, "-c", GUARD, str(ROOT / "examples" / "deploy_onnx.py"), str(model), str(n),
                          str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res


def _exported(plugin: str, cfg: dict, tmp_path: Path) -> Path:
    from gancore.export import export_run
    from gancore.loop import prepare, train

    state = train(prepare(plugin, cfg, out=str(tmp_path / "run")), progress=False)
    return export_run(state.run_dir, ["onnx"], out=tmp_path / "exp") / "generator.onnx"


def test_the_deployment_example_runs_without_torch_or_gancore(exported, tmp_path):
    out = tmp_path / "strip.pgm"
    res = _example(exported / "generator.onnx", 5, out)
    assert "5 samples from dcgan on" in res.stdout
    assert res.stderr == ""  # no onnxruntime log lines about a CUDA provider this machine cannot start
    header = out.read_bytes()[:16]
    assert header.startswith(b"P5 140 28 255\n")  # 5 images of 28 px side by side


def test_the_deployment_example_writes_colour_models_in_colour(tmp_path):
    from tests.conftest import paint_classes, tiny

    paint_classes(tmp_path / "imgs")
    cfg = tiny(data={"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
               train={"batch_size": 4})
    out = tmp_path / "strip.ppm"
    _example(_exported("dcgan", cfg, tmp_path), 3, out)
    data = out.read_bytes()
    header = b"P6 96 32 255\n"  # 3 RGB images of 32 px side by side
    assert data.startswith(header) and len(data) == len(header) + 96 * 32 * 3


def test_the_deployment_example_writes_a_model_of_points_as_csv(tmp_path):
    cfg = {"device": "cpu", "data": {"points": 200}, "train": {"steps": 2, "checkpoint_every": 2, "batch_size": 50}}
    out = tmp_path / "points.csv"
    res = _example(_exported("gan2d", cfg, tmp_path), 4, out)
    assert "4 points from gan2d on" in res.stdout
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(len(r) == 2 for r in rows) and all(float(v) == float(v) for r in rows for v in r)


def test_the_deployment_example_refuses_a_text_model(tmp_path):
    cfg = {"device": "cpu", "data": {"name": "words", "limit": 256},
           "train": {"steps": 2, "checkpoint_every": 2, "batch_size": 16}}
    res = subprocess.run([sys.executable, "-c", GUARD, str(ROOT / "examples" / "deploy_onnx.py"),
                          str(_exported("gumbel-text", cfg, tmp_path)), "4", str(tmp_path / "x.csv")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "generates sequence, not images or points; for text use deploy_text_onnx.py" \
        in res.stderr
    assert not (tmp_path / "x.csv").exists()


def test_the_deployment_example_refuses_a_model_that_is_not_a_generator_and_a_bad_n(tmp_path):
    from gancore.export import export_run
    from gancore.loop import prepare, train
    from tests.conftest import tiny

    state = train(prepare("bigan", tiny(), out=str(tmp_path / "run")), progress=False)
    folder = export_run(state.run_dir, ["onnx"], out=tmp_path / "exp")
    for model, n, message in [
            (folder / "encoder.onnx", "4", "is not a gancore generator (encoder); give generator.onnx"),
            (folder / "generator.onnx", "0", "N must be 1 or more, got 0")]:
        res = subprocess.run([sys.executable, "-c", GUARD, str(ROOT / "examples" / "deploy_onnx.py"), str(model), n,
                              str(tmp_path / "x.pgm")], capture_output=True, text=True)
        assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.pgm").exists()


def test_the_deployment_readme_shows_the_tested_script_as_it_is():
    readme = (ROOT / "exported" / "README.md").read_text()
    listing = readme.split("```python\n", 1)[1].split("```\n", 1)[0]
    assert listing == (ROOT / "examples" / "deploy_onnx.py").read_text()


def test_a_plugin_can_add_a_gan_subcommand(tmp_path):
    make_dist(tmp_path, "fake-cmd", {"cmd": "fake_cmd"}, {"fake_cmd": COMMAND})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "gancore_cli", "hello", "--name", "gan"], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "hello gan from a plugin"


def test_a_plugin_commands_bug_is_one_line_naming_it_and_its_own_exit_code_stands(tmp_path):
    make_dist(tmp_path, "fake-boom", {"boom": "fake_boom"}, {"fake_boom": COMMAND_BUG})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "gancore_cli", "boom"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: command 'boom' of plugin 'boom' failed (fake_boom.py:9): KeyError: 'oops'")
    res = subprocess.run([sys.executable, "-m", "gancore_cli", "boom", "--code", "3"], capture_output=True, text=True,
                         env=env)
    assert res.returncode == 3 and res.stderr == ""


def test_a_plugin_command_cannot_take_over_one_of_gans_own(tmp_path):
    make_dist(tmp_path, "fake-hijack", {"hijack": "fake_hijack"}, {"fake_hijack": HIJACKS_UNINSTALL})
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "gancore_cli", "uninstall"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "Missing argument 'packages'" in res.stderr  # gan's own, which needs a name
    assert "hijacked" not in res.stdout  # the plugin's would have run and printed this
    assert "plugin 'hijack' registers a command 'uninstall', which is gan's own; it is not added" in res.stderr
