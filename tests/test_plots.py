"""Curves of a run: training's log and gan eval's reports on one set of axes."""

import json
import math

from gancore.plots import curves, panels


def write_log(run, lines):
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def write_report(run, name, step, results):
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / name).write_text(json.dumps({"step": step, "weights": "live", "results": results}))


def test_curves_join_training_evaluations_and_gan_eval_reports(tmp_path):
    write_log(tmp_path, [{"step": 10, "d_loss": 1.0, "g_loss": 2.0, "time_s": 1.0, "images_per_s": 9.0},
                         {"step": 20, "d_loss": 0.8, "g_loss": 2.2, "time_s": 2.0, "images_per_s": 9.0},
                         {"step": 20, "eval": {"q/frechet": 40.0}},
                         {"event": "resumed", "step": 20}])
    write_report(tmp_path, "step-0000010.json", 10, {"q/frechet": 50.0, "q/frechet_ceiling": 0.6,
                                                      "q/note": "text is not drawn"})
    write_report(tmp_path, "step-0000020.json", 20, {"q/frechet": 39.0})  # re-scored: replaces training's
    write_report(tmp_path, "step-0000020-live.json", 20, {"q/frechet": 45.0, "q/frechet_ceiling": 0.6,
                                                           "q/lonely_ceiling": 1.0})
    (tmp_path / "eval" / "step-0000030.json").write_text("{half a report")  # skipped, not fatal
    drawn = dict(panels(tmp_path))
    # a figure's real-data ceiling is drawn in its panel; a ceiling without its figure keeps a panel of its own
    assert list(drawn) == ["loss", "q/frechet", "q/frechet (live)", "q/lonely_ceiling (live)"]
    assert drawn["loss"] == {"d_loss": [(10, 1.0), (20, 0.8)], "g_loss": [(10, 2.0), (20, 2.2)]}
    assert drawn["q/frechet"] == {"q/frechet": [(10, 50.0), (20, 39.0)], "real data": [(10, 0.6)]}
    assert drawn["q/frechet (live)"] == {"q/frechet (live)": [(20, 45.0)], "real data": [(20, 0.6)]}
    assert curves(tmp_path).stat().st_size > 1000


def test_curves_of_a_run_with_only_gan_eval_reports(tmp_path):
    write_report(tmp_path, "step-0000500.json", 500, {"q/frechet": 30.0})
    assert panels(tmp_path) == [("q/frechet", {"q/frechet": [(500, 30.0)]})]
    assert curves(tmp_path) == tmp_path / "curves.png"


def test_no_curves_before_anything_is_logged(tmp_path):
    assert curves(tmp_path) is None and not (tmp_path / "curves.png").exists()


def test_non_finite_values_logged_as_strings_draw_as_gaps(tmp_path):
    # strict JSON logs write a NaN loss or an infinite figure as a string; the curves read them as numbers
    write_log(tmp_path, [{"step": 10, "d_loss": 1.0, "time_s": 1.0}, {"step": 20, "d_loss": "nan", "time_s": 2.0},
                         {"step": 20, "eval": {"modes/reverse_kl": "inf"}}])
    write_report(tmp_path, "step-0000030.json", 30, {"modes/reverse_kl": 0.5})
    drawn = dict(panels(tmp_path))
    (s1, v1), (s2, v2) = drawn["loss"]["d_loss"]
    assert (s1, v1, s2) == (10, 1.0, 20) and math.isnan(v2)
    (s1, v1), (s2, v2) = drawn["modes/reverse_kl"]["modes/reverse_kl"]
    assert s1 == 20 and math.isnan(v1) and (s2, v2) == (30, 0.5)
    assert curves(tmp_path).exists()
