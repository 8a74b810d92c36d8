"""The public evaluation API: what `gan eval` does, from Python."""

import json
import shutil

import pytest

import gancore
from gancore.errors import GanError


def test_evaluate_run_scores_writes_the_report_and_notes_what_it_skipped(trained_run, tmp_path, monkeypatch):
    from gancore.builtin.image_metrics import FashionQuality

    monkeypatch.setattr(FashionQuality, "samples", 200)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    notes: list[str] = []
    res = gancore.evaluate_run(run, note=notes.append)
    assert res.step == 6 and res.backend == "PyTorch on cpu"
    assert res.results["fashion-quality/frechet"] > res.results["fashion-quality/frechet_ceiling"]
    assert json.loads(res.report.read_text())["results"] == res.results
    assert res.curves == run / "curves.png" and res.curves.exists()
    assert notes == [f"{name}: skipped; {why}" for name, why in res.skipped.items()]


def test_evaluate_run_of_a_metric_that_does_not_fit(trained_run):
    with pytest.raises(GanError, match="metric 'modes' does not fit this run"):
        gancore.evaluate_run(trained_run, metrics=["modes"])


def test_list_plugins_is_what_gan_plugins_prints():
    listed = {p["name"]: p for p in gancore.list_plugins()}
    assert "fashion-quality" in listed["gancore"]["components"]["metrics"]
    assert "dcgan" in listed["dcgan"]["components"]["recipes"]


def test_a_run_whose_data_moved_asks_for_data_dir(torchvision_root_only, tmp_path, monkeypatch):
    from gancore.builtin.image_metrics import FashionQuality
    from gancore.loop import prepare, train
    from tests.conftest import tiny

    monkeypatch.setattr(FashionQuality, "samples", 200)
    state = train(prepare("dcgan", tiny(data={"dir": str(torchvision_root_only)}), out="run"), progress=False)
    moved = torchvision_root_only.rename(tmp_path / "moved")
    with pytest.raises(GanError, match=r"read its data from '.*tv' \(data.dir in its config.json\), which is not "
                                       r"there now; pass --data-dir"):
        gancore.evaluate_run(state.run_dir, metrics=["fashion-quality"])
    res = gancore.evaluate_run(state.run_dir, metrics=["fashion-quality"], data_dir=str(moved))
    assert res.results["fashion-quality/frechet"] > 0
