"""gan2d: the mixtures, the mode metrics on known samples, the MLPs, and a short run end to end."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from gancore.loop import prepare, train
from gancore_cli.app import app
from gancore_plugins.gan2d import mixtures
from gancore_plugins.gan2d.nets import MLPDiscriminator, MLPDiscriminatorConfig


def test_ring_and_grid_follow_the_protocol():
    ring = mixtures.ring(mixtures.MixtureConfig(points=20000))
    modes, sigma = mixtures.ring_modes()
    assert len(ring) == 20000 and ring.shape == (2,) and sigma == 0.01 and len(modes) == 8
    assert torch.allclose(modes.norm(dim=1), torch.ones(8))
    d = torch.cdist(ring.x, modes).min(1).values
    assert (d < 3 * sigma).float().mean() > 0.98  # 3-sigma in 2-D holds ~98.9%
    grid = mixtures.grid(mixtures.MixtureConfig(points=20000))
    assert len(grid.info["modes"]) == 25 and grid.info["sigma"] == 0.05
    assert set(torch.tensor(grid.info["modes"]).flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_mode_metrics_on_real_data_are_perfect():
    ring = mixtures.ring(mixtures.MixtureConfig(points=2500, seed=5))
    modes, sigma = mixtures.ring_modes()
    m = mixtures.mode_metrics(ring.x, modes, sigma)
    assert m["modes"] == 8 and m["high_quality_pct"] > 97 and m["reverse_kl"] < 0.01


def test_a_sampler_that_drops_two_modes_of_the_ring_is_caught():
    modes, sigma = mixtures.ring_modes()
    g = torch.Generator().manual_seed(0)
    which = torch.randint(0, 6, (2500,), generator=g)  # modes 6 and 7 never drawn
    x = modes[which] + sigma * torch.randn(2500, 2, generator=g)
    m = mixtures.mode_metrics(x, modes, sigma)
    assert m["modes"] == 6
    assert m["reverse_kl"] == pytest.approx(math.log(8 / 6), abs=0.01)  # uniform over 6 of 8


def test_off_mode_samples_are_not_high_quality():
    modes, sigma = mixtures.ring_modes()
    x = torch.zeros(100, 2)  # the ring's centre: 1.0 from every mode
    m = mixtures.mode_metrics(x, modes, sigma)
    assert m["modes"] == 0 and m["high_quality_pct"] == 0 and m["reverse_kl"] == float("inf")


def test_packing_and_minibatch_discrimination_shapes():
    d = MLPDiscriminator(MLPDiscriminatorConfig(pack=4, minibatch_features=8), 2)
    out = d(torch.randn(16, 2))
    assert out.logits.shape == (4,) and out.features.shape == (4, 128)
    with pytest.raises(ValueError, match="does not divide into packs of 4"):
        d(torch.randn(6, 2))


def test_minibatch_discrimination_sees_a_collapsed_batch():
    from gancore.layers import MinibatchDiscrimination

    layer = MinibatchDiscrimination(3, 4, 2)
    same = layer(torch.ones(5, 3))[:, 3:]
    spread = layer(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)) * 1000)[:, 3:]
    assert torch.allclose(same, torch.full_like(same, 4.0))  # each sample matches the 4 others exactly
    assert spread.max() < 1e-3  # far-apart samples: no near neighbours


def test_a_short_run_logs_evaluations_draws_scatter_plots_and_evaluates(tmp_path):
    state = prepare("gan2d", {"device": "cpu", "data": {"points": 2000}, "train": {
        "steps": 40, "log_every": 10, "eval_every": 20, "sample_every": 20, "checkpoint_every": 20}}, out="runs/r")
    train(state, progress=False)
    log = [json.loads(x) for x in (state.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("d_r1" in x for x in log if "d_adv" in x)  # the recipe's lazy R1 penalty is on
    evals = [x for x in log if "eval" in x]
    assert [x["step"] for x in evals] == [20, 40]
    assert set(evals[0]["eval"]) == {"modes/modes", "modes/modes_total", "modes/high_quality_pct", "modes/reverse_kl"}
    assert (state.run_dir / "samples" / "step-0000040.png").stat().st_size > 1000
    res = CliRunner().invoke(app, ["eval", str(state.run_dir)])
    assert res.exit_code == 0, res.output
    assert "modes/modes_total" in res.stdout and "8" in res.stdout
    report = json.loads((state.run_dir / "eval" / "step-0000040.json").read_text())
    assert report["results"]["modes/modes_total"] == 8.0
    assert (state.run_dir / "curves.png").stat().st_size > 1000
    # gan sample draws 2-D points as a scatter plot over the modes, from the run and from its export
    res = CliRunner().invoke(app, ["sample", str(state.run_dir), "-n", "500", "-o", str(tmp_path / "run.png")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["export", str(state.run_dir), "--out", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["sample", str(tmp_path / "exp" / "generator.onnx"), "-n", "500", "-o",
                                   str(tmp_path / "onnx.png")])
    assert res.exit_code == 0, res.output
    for name in ("run.png", "onnx.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and (tmp_path / name).stat().st_size > 5000


def test_gan_eval_on_a_run_no_metric_fits(trained_run, tmp_path):
    import shutil

    run = tmp_path / "other"
    shutil.copytree(trained_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta["data"]["dataset"] = "SomethingElse"
    (run / "run.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 2 and "no registered metric fits" in res.stderr
