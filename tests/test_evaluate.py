"""The public evaluation API: what `gan eval` does, from Python."""

import json
import shutil

import pytest

import gancore
from gancore.errors import GanError
from gancore.evaluate import evaluate
from gancore.runs import open_run
from tests.conftest import BrokenMetric, train_gan2d, with_broken_metric


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


def test_a_metric_that_fails_in_training_is_logged_and_dropped_and_the_run_goes_on(monkeypatch):
    with_broken_metric(monkeypatch)
    run = train_gan2d()
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x for x in log if x.get("event") == "eval_failed"] == [
        {"step": 4, "event": "eval_failed", "metric": "broken", "error": "RuntimeError: boom"}]  # not tried at 8
    assert [x["step"] for x in log if "eval" in x] == [4, 8]
    assert (run / "checkpoints" / "step-0000008").is_dir()


def test_evaluate_run_keeps_the_scores_of_the_metrics_that_worked(gan2d_run, monkeypatch):
    with_broken_metric(monkeypatch)
    res = gancore.evaluate_run(gan2d_run)
    assert res.failed == {"broken": "RuntimeError: boom"} and res.results["modes/modes_total"] == 8.0
    report = json.loads(res.report.read_text())
    assert report["failed"] == res.failed and report["results"] == res.results


def test_evaluate_run_where_every_metric_fails_is_an_error_and_writes_no_report(gan2d_run, monkeypatch):
    with_broken_metric(monkeypatch, only=True)
    with pytest.raises(GanError, match=r"^metric 'broken' failed: RuntimeError: boom$"):
        gancore.evaluate_run(gan2d_run)
    assert not (gan2d_run / "eval").exists()
    with pytest.raises(RuntimeError, match="boom"):  # without a `failed` record, the error is the caller's
        evaluate(open_run(gan2d_run), {"broken": BrokenMetric()})
