"""Shared fixtures: a tiny dcgan config, a trained tiny run and its export, a working folder per test, data in a
torchvision root only, a second-long 2-D run and a broken metric."""

from __future__ import annotations

import copy
import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gancore.components import Metric

# Small enough that a run takes a second or two on 2 CPU cores, big enough to exercise every phase.
TINY: dict[str, Any] = {
    "train": {"steps": 6, "batch_size": 8, "log_every": 2, "sample_every": 3, "checkpoint_every": 3,
              "sample_count": 4, "keep_checkpoints": 2},
    "device": "cpu",  # CPU keeps these tests deterministic; tests/test_cuda.py covers the GPU
    "data": {"limit": 128},
    "generator": {"width": 8},
    "discriminator": {"width": 8},
}


# The optional extra gancore[fid] (in [dev], so CI has it): tests of its weights file need it installed.
needs_fidelity = pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is None,
                                    reason="needs the optional extra gancore[fid] (torch-fidelity)")


def tiny(**over: Any) -> dict[str, Any]:
    from gancore.config import merge

    return merge(copy.deepcopy(TINY), over)


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own folder, so runs/ and exported/ never leak between tests."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gancore.loop import prepare, train

    state = prepare("dcgan", tiny(), out=str(tmp_path_factory.mktemp("runs") / "dcgan-tiny"))
    train(state, progress=False)
    return state.run_dir


@pytest.fixture(scope="session")
def exported(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gancore.export import export_run

    return export_run(trained_run, ["onnx", "torchscript"], out=tmp_path_factory.mktemp("exp") / "dcgan-tiny")


def make_dist(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Write an installed-looking distribution (dist-info + modules) under ``root``, without pip."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[gancore]\n{eps}\n")
    for mod, src in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder on sys.path where tests install fake plugin distributions; the manager is rebuilt after."""
    from gancore.plugins import reset_manager

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    reset_manager()
    yield site
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]
    reset_manager()


@pytest.fixture
def torchvision_root_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fashion-MNIST in a torchvision root (returned) and nowhere else gancore looks by default."""
    import shutil

    from gancore.builtin import datasets, image_metrics

    shutil.copytree(datasets.find_root("FashionMNIST", "") / "FashionMNIST", tmp_path / "tv" / "FashionMNIST")
    monkeypatch.setitem(datasets.DEBIAN_DIRS, "FashionMNIST", str(tmp_path / "no-debian-package"))
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "empty-cache"))
    image_metrics.reference.cache_clear()  # a cached reference would hide where the images come from
    yield tmp_path / "tv"
    image_metrics.reference.cache_clear()


RED, BLUE = (255, 0, 0), (0, 0, 255)


def paint(folder: Path, colours: dict[str, tuple[int, int, int]],
          sizes: tuple[tuple[int, int], ...] = ((40, 30), (30, 50), (64, 64))) -> None:
    """One image per size for each (name, colour): wider, taller and square, as PNG and JPEG."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in colours.items():
        for i, size in enumerate(sizes):
            Image.new("RGB", size, colour).save(folder / f"{name}-{i}.{'png' if i % 2 == 0 else 'jpg'}")


def paint_classes(root: Path, split: str = "") -> None:
    """A blue and a red class subfolder in ``root/split``."""
    for name, colour in {"blue": BLUE, "red": RED}.items():
        paint(root / split / name, {name: colour})


class BrokenMetric(Metric):
    """A metric with a bug in it, as a third-party plugin's might have."""

    def __call__(self, state: Any) -> dict[str, float]:
        raise RuntimeError("boom")


def with_broken_metric(monkeypatch: pytest.MonkeyPatch, only: bool = False) -> None:
    """Every run in this test also (or, ``only``, just) gets the broken metric, in training and in evaluation."""
    from gancore import evaluate, loop

    real = evaluate.applicable

    def applicable(state: Any, names: list[str] | None = None, skipped: dict[str, str] | None = None) -> dict:
        return {**({} if only else real(state, names, skipped)), "broken": BrokenMetric()}

    monkeypatch.setattr(evaluate, "applicable", applicable)
    monkeypatch.setattr(loop, "applicable", applicable)


def train_gan2d(out: str = "runs/r") -> Path:
    """8 steps on 2-D points, evaluated every 4: a run in a second."""
    from gancore.loop import prepare, train

    return train(prepare("gan2d", {"device": "cpu", "data": {"points": 512}, "train": {
        "steps": 8, "batch_size": 64, "log_every": 4, "eval_every": 4, "sample_every": 8,
        "checkpoint_every": 8}}, out=out), progress=False).run_dir


@pytest.fixture
def gan2d_run() -> Path:
    return train_gan2d()



def add_metrics(monkeypatch: pytest.MonkeyPatch, **builders: Any) -> None:
    """Register metric builders (by name, ``-`` for ``_``) from a plugin 'fake' in the shared manager, for one test."""
    from gancore.plugins import get_manager
    from gancore.registry import Entry

    reg = get_manager().registries.metrics
    for name, builder in builders.items():
        name = name.replace("_", "-")
        monkeypatch.setitem(reg._entries, name, Entry(name, builder, None, "fake", ""))
