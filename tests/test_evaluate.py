"""The public evaluation API: what `gan eval` does, from Python."""

import json
import math
import shutil

import pytest

import gancore
from gancore.errors import GanError
from gancore.evaluate import evaluate
from gancore.runs import open_run
from tests.conftest import BrokenMetric, add_metrics, train_gan2d, with_broken_metric


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
    # float(): the report writes a non-finite figure (this tiny run's reverse KL) as a string, as strict JSON needs
    assert report["failed"] == res.failed and {k: float(v) for k, v in report["results"].items()} == res.results


def test_evaluate_run_where_every_metric_fails_is_an_error_and_writes_no_report(gan2d_run, monkeypatch):
    with_broken_metric(monkeypatch, only=True)
    with pytest.raises(GanError, match=r"^metric 'broken' failed: RuntimeError: boom$"):
        gancore.evaluate_run(gan2d_run)
    assert not (gan2d_run / "eval").exists()
    with pytest.raises(RuntimeError, match="boom"):  # without a `failed` record, the error is the caller's
        evaluate(open_run(gan2d_run), {"broken": BrokenMetric()})


class _AppliesRaises(BrokenMetric):
    def applies(self, state):
        raise KeyError("data")


def _raise():
    raise RuntimeError("no weights")


def test_a_metric_registered_as_a_plain_callable_fits_every_run(gan2d_run, monkeypatch):
    add_metrics(monkeypatch, plain=lambda: (lambda run: {"v": 1.0}))  # as gan_register_metrics describes it
    res = gancore.evaluate_run(gan2d_run)
    assert res.results["plain/v"] == 1.0 and res.results["modes/modes_total"] == 8.0


def test_a_metric_whose_plugin_raises_while_setting_up_is_skipped_and_refused_when_named(gan2d_run, monkeypatch,
                                                                                          capsys):
    add_metrics(monkeypatch, bad_build=_raise, bad_value=lambda: 3, bad_applies=_AppliesRaises)
    notes: list[str] = []
    res = gancore.evaluate_run(gan2d_run, note=notes.append)
    assert "modes/modes_total" in res.results and not res.failed
    assert notes == ["bad-applies: skipped; plugin 'fake' raised KeyError: 'data' while setting it up",
                     "bad-build: skipped; plugin 'fake' raised RuntimeError: no weights while setting it up",
                     "bad-value: skipped; its builder returned a int, not a gancore.components.Metric or a "
                     "callable (plugin 'fake')"]
    with pytest.raises(GanError, match=r"metric 'bad-build' cannot run here: plugin 'fake' raised RuntimeError"):
        gancore.evaluate_run(gan2d_run, metrics=["bad-build"])
    capsys.readouterr()
    train_gan2d("runs/again")  # training with train.eval_every goes on, and says what it left out
    assert "train.eval_every: metric 'bad-build' skipped; plugin 'fake' raised" in capsys.readouterr().err


def test_a_metric_that_returns_no_figures_writes_no_report_and_keeps_the_earlier_one(gan2d_run, monkeypatch):
    add_metrics(monkeypatch, empty=lambda: (lambda run: {}))
    full = gancore.evaluate_run(gan2d_run)  # "empty" beside modes: its silence costs nothing
    assert "modes/modes_total" in full.results and not full.failed
    before = full.report.read_text()
    with pytest.raises(GanError, match=r"^metric 'empty' returned no figures for run .*, so no report was written "
                                       r"\(an earlier one is kept\)"):
        gancore.evaluate_run(gan2d_run, metrics=["empty"])
    assert full.report.read_text() == before


def test_scoring_some_metrics_again_adds_to_the_steps_report(gan2d_run, monkeypatch):
    value = {"v": 1.0}
    add_metrics(monkeypatch, plain=lambda: (lambda run: dict(value)))
    full = gancore.evaluate_run(gan2d_run)
    modes = {k: v for k, v in json.loads(full.report.read_text())["results"].items() if k.startswith("modes/")}
    value["v"] = 2.0
    again = gancore.evaluate_run(gan2d_run, metrics=["plain"])
    assert again.results == {"plain/v": 2.0} and again.report == full.report
    results = json.loads(again.report.read_text())["results"]
    assert results["plain/v"] == 2.0 and {k: v for k, v in results.items() if k.startswith("modes/")} == modes
    add_metrics(monkeypatch, bad=BrokenMetric)
    gancore.evaluate_run(gan2d_run, metrics=["plain", "bad"])  # a failure is recorded beside what is kept
    report = json.loads(again.report.read_text())
    assert report["failed"] == {"bad": "RuntimeError: boom"} and "modes/modes_total" in report["results"]
    gancore.evaluate_run(gan2d_run, metrics=["plain"])  # a failure is kept until its metric is scored again
    assert json.loads(again.report.read_text())["failed"] == {"bad": "RuntimeError: boom"}
    report = json.loads(again.report.read_text())
    report["results"]["gone/v"] = 1.0  # a metric since uninstalled
    again.report.write_text(json.dumps(report))
    gancore.evaluate_run(gan2d_run)  # no --metric: the report is replaced whole
    assert "gone/v" not in json.loads(again.report.read_text())["results"]


def test_scoring_some_metrics_over_an_unreadable_report_says_it_is_replaced(gan2d_run, monkeypatch, capsys):
    add_metrics(monkeypatch, plain=lambda: (lambda run: {"v": 1.0}))
    report = gancore.evaluate_run(gan2d_run, metrics=["plain"]).report
    capsys.readouterr()
    report.write_text("{bad")
    gancore.evaluate_run(gan2d_run, metrics=["plain"])
    assert f"the earlier report {report} cannot be read (JSONDecodeError" in capsys.readouterr().err
    assert json.loads(report.read_text())["results"] == {"plain/v": 1.0}


def _exits(run):
    raise SystemExit(3)


def test_a_metric_returning_no_dict_or_no_numbers_or_exiting_is_a_failure_not_a_crash(gan2d_run, monkeypatch):
    add_metrics(monkeypatch, none=lambda: (lambda run: None), text=lambda: (lambda run: {"s": "hello"}),
                exits=lambda: _exits)
    res = gancore.evaluate_run(gan2d_run)
    assert res.failed == {"exits": "SystemExit: 3",
                          "none": "TypeError: the metric returned NoneType, not a dict of figures",
                          "text": "TypeError: the metric's figure 's' is 'hello', not a number"}
    assert res.results["modes/modes_total"] == 8.0


def test_an_infinite_figure_is_reported_in_strict_json(gan2d_run, monkeypatch):
    add_metrics(monkeypatch, unbounded=lambda: (lambda run: {"kl": math.inf}))
    res = gancore.evaluate_run(gan2d_run)
    assert res.results["unbounded/kl"] == math.inf  # the caller gets the float
    report = json.loads(res.report.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the report"))
    assert report["results"]["unbounded/kl"] == "inf"


def test_held_out_data_of_other_classes_is_refused_before_scoring(tmp_path):
    from gancore.errors import DataError
    from gancore.loop import prepare, train
    from tests.conftest import paint, paint_classes, tiny

    for split in ("train", "test"):
        paint_classes(tmp_path / "imgs", split)  # blue, red
        paint(tmp_path / "other" / split / "green", {"g": (0, 255, 0)})
        paint(tmp_path / "other" / split / "red", {"r": (255, 0, 0)})
    cfg = tiny(data={"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
               train={"batch_size": 4, "steps": 2, "checkpoint_every": 2})
    run = train(prepare("dcgan", cfg, out=str(tmp_path / "run")), progress=False).run_dir
    with pytest.raises(DataError, match=r"the held-out data \(image-folder in .*other\) no longer matches the data "
                                         r"the run was trained on: its classes changed \(2 then, 2 now; gone: 'blue'; "
                                         r"new: 'green'\)\. Give --data-dir the data .*run was trained on"):
        gancore.evaluate_run(run, data_dir=str(tmp_path / "other"))
    assert not (run / "eval").exists()
