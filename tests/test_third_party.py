"""A third-party plugin in its own package, pip-installed, with no change to the core."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gan-plugin-lsgan"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``gan install`` the example into a separate folder, so the test environment stays clean."""
    target = tmp_path_factory.mktemp("site")
    res = subprocess.run([sys.executable, "-m", "gancore_cli", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--target", str(target), str(EXAMPLE)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (target / "gan_plugin_lsgan" / "__init__.py").exists()
    return target


def run_gan(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "gancore_cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


def test_installed_plugin_appears_in_gan_plugins(site):
    res = run_gan(site, "plugins")
    assert res.returncode == 0, res.stderr
    lsgan = next(p for p in json.loads(res.stdout) if p["name"] == "lsgan")
    assert lsgan["distribution"] == "gan-plugin-lsgan" and lsgan["version"] == "0.1.0"
    assert lsgan["origin"].startswith(str(site))
    assert lsgan["components"] == {"generators": ["mlp"], "losses": ["least-squares"], "recipes": ["lsgan"]}


def test_installed_plugin_trains(site, tmp_path):
    res = run_gan(site, "train", "--plugin", "lsgan", "--steps", "3", "--batch-size", "8", "--quiet",
                  "--set", "data.limit=64", "--set", "generator.hidden=16", "--out", "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["loss"]["name"] == "least-squares" and cfg["generator"]["name"] == "mlp"
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 3


def test_least_squares_loss_on_known_logits(site, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(site))
    from gan_plugin_lsgan import LeastSquares, LeastSquaresConfig

    loss = LeastSquares(LeastSquaresConfig())
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    assert loss.d_loss(real, fake).item() == pytest.approx(0.5 * 2.0 + 0.5 * 2.0)
    assert loss.g_loss(fake).item() == pytest.approx(0.5 * 1.0)


def test_the_readme_shows_the_examples_pyproject_as_it_is():
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    assert f"```toml\n{(EXAMPLE / 'pyproject.toml').read_text()}```\n" in readme  # a snippet pip can install
