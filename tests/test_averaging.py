"""Weight averaging (train.ema): the update on known weights, which networks it covers, checkpoints and use."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gancore.averaging import WeightAverage, averaged, check_averageable
from gancore.builtin.samplers import NoiseConfig, NormalSampler
from gancore.checkpoint import list_checkpoints, load_checkpoint
from gancore.components import Nets
from gancore.config import TrainConfig
from gancore.errors import CheckpointError, ConfigError
from gancore.evaluate import evaluate
from gancore.export import export_run
from gancore.loop import prepare, prepare_resume, train
from gancore.runs import open_run
from tests.conftest import tiny


class _G(nn.Module):
    """noise -> Linear(1, 1) -> BatchNorm1d: a generator small enough to check by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1, bias=False)
        self.bn = nn.BatchNorm1d(1)
        nn.init.constant_(self.lin.weight, 1.0)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(noise))


def _average(decay: float, start: int = 0, batches: int = 3) -> tuple[Nets, WeightAverage]:
    nets = Nets(generator=_G(), discriminator=nn.Linear(1, 1), extra={"encoder": nn.Linear(1, 1)},
                groups={"encoder": "generator"})
    sampler = NormalSampler(NoiseConfig(dim=1))
    return nets, WeightAverage({"generator": nets.generator}, decay, sampler=sampler, batch_size=4, start=start,
                               batches=batches)


def _w(m: nn.Module) -> float:
    return m.lin.weight.item()


def test_each_update_moves_the_average_a_one_minus_decay_share_towards_the_live_weights():
    nets, avg = _average(decay=0.75)
    assert list(avg.copies) == ["generator"]  # G alone: an encoder keeps its live weights
    with torch.no_grad():
        nets.generator.lin.weight.fill_(5.0)  # the average starts at the initial weights, 1.0
    avg.update(1)
    assert _w(avg.copies["generator"]) == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)
    avg.update(2)
    assert _w(avg.copies["generator"]) == pytest.approx(0.75 * 2.0 + 0.25 * 5.0)
    assert not any(p.requires_grad for p in avg.copies["generator"].parameters())


def test_before_the_start_step_the_average_follows_the_live_weights():
    nets, avg = _average(decay=0.9, start=2)
    w = nets.generator.lin.weight
    for step, value in ((1, 3.0), (2, 4.0)):
        with torch.no_grad():
            w.fill_(value)
        avg.update(step)
        assert _w(avg.copies["generator"]) == value
    with torch.no_grad():
        w.fill_(14.0)
    avg.update(3)
    assert _w(avg.copies["generator"]) == pytest.approx(0.9 * 4.0 + 0.1 * 14.0)


def test_batch_norm_statistics_are_estimated_afresh_for_the_averaged_weights():
    nets, avg = _average(decay=0.5, batches=3)
    with torch.no_grad():
        nets.generator.lin.weight.fill_(3.0)
    avg.update(1)  # averaged weight 2.0, so its pre-norm activations are 2 x noise
    g = avg.copies["generator"]
    rng = torch.get_rng_state()
    avg.refresh_norms()
    assert torch.equal(torch.get_rng_state(), rng)  # training's random streams are not disturbed
    gen = torch.Generator().manual_seed(0)  # the same draws as the estimate's
    noise = torch.cat([avg.sampler.sample(4, gen, torch.device("cpu"))["noise"] for _ in range(3)])
    acts = 2.0 * noise.flatten()
    # momentum None: the mean of the three batches' statistics (each variance unbiased)
    means = acts.view(3, 4).mean(1)
    vars_ = acts.view(3, 4).var(1)
    assert g.bn.running_mean.item() == pytest.approx(means.mean().item(), rel=1e-5)
    assert g.bn.running_var.item() == pytest.approx(vars_.mean().item(), rel=1e-5)
    assert g.bn.momentum == 0.1  # put back
    before = g.bn.running_mean.clone()
    avg.refresh_norms()  # nothing changed since: no second estimate
    assert torch.equal(g.bn.running_mean, before)


def test_swapped_in_replaces_the_generator_and_puts_it_back_after_an_error():
    nets, avg = _average(decay=0.9)
    live = dict(nets.named())
    with pytest.raises(RuntimeError), avg.swapped_in(nets):
        assert nets.generator is avg.copies["generator"]
        assert nets.extra["encoder"] is live["encoder"] and nets.discriminator is live["discriminator"]
        raise RuntimeError("boom")
    assert nets.named() == live


def test_ema_nets_averages_each_network_it_names_and_swaps_them_all_in():
    nets = Nets(generator=_G(), discriminator=nn.Linear(1, 1, bias=False), extra={"encoder": nn.Linear(1, 1)},
                groups={"encoder": "generator"})
    nn.init.constant_(nets.discriminator.weight, 1.0)
    avg = WeightAverage({"generator": nets.generator, "discriminator": nets.discriminator}, 0.75,
                        sampler=NormalSampler(NoiseConfig(dim=1)), batch_size=4)
    with torch.no_grad():
        nets.discriminator.weight.fill_(5.0)
    avg.update(1)
    assert avg.copies["discriminator"].weight.item() == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)
    assert _w(avg.copies["generator"]) == 1.0  # G's live weights did not move
    live = dict(nets.named())
    with avg.swapped_in(nets):
        assert nets.discriminator is avg.copies["discriminator"] and nets.generator is avg.copies["generator"]
        assert nets.extra["encoder"] is live["encoder"]
    assert nets.named() == live


def test_an_extra_networks_average_is_swapped_in_by_role():
    nets, _ = _average(0.5)
    live = dict(nets.named())
    avg = WeightAverage({"encoder": nets.extra["encoder"]}, 0.5, sampler=NormalSampler(NoiseConfig(dim=1)),
                        batch_size=4)
    with avg.swapped_in(nets):
        assert nets.extra["encoder"] is avg.copies["encoder"] and nets.generator is live["generator"]
    assert nets.named() == live


class _PairD(nn.Sequential):
    joint_latent = True  # reads (x, z), as BiGAN's D: real examples alone cannot run it


def test_ema_nets_refuses_an_unknown_network_and_one_whose_batch_norm_cannot_be_estimated():
    for bad in ([], ["generator", "generator"]):
        with pytest.raises(ValueError, match=r"train\.ema_nets must name one or more networks, each once"):
            TrainConfig(ema_nets=bad)
    points = {"kind": "points", "shape": [1]}
    nets = Nets(generator=_G(), discriminator=nn.Sequential(nn.Linear(1, 1), nn.BatchNorm1d(1)))
    with pytest.raises(ConfigError, match="no network 'critic'; its networks are generator, discriminator"):
        check_averageable(nets, ["generator", "critic"], points)
    check_averageable(nets, ["generator", "discriminator"], points)  # statistics estimated on real points
    with pytest.raises(ConfigError, match=r"discriminator has batch-norm.*examples are sequence, not images or points"):
        check_averageable(nets, ["discriminator"], {"kind": "sequence"})
    nets.discriminator = _PairD(nn.Linear(1, 1), nn.BatchNorm1d(1))
    with pytest.raises(ConfigError, match=r"it reads \(x, z\) pairs; leave it out of train\.ema_nets"):
        check_averageable(nets, ["discriminator"], points)
    nets.discriminator = _PairD(nn.Linear(1, 1))  # no statistics: nothing to estimate
    check_averageable(nets, ["discriminator"], points)



def test_a_discriminators_statistics_are_estimated_on_real_examples():
    d = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    nn.init.constant_(d[0].weight, 3.0)
    avg = WeightAverage({"discriminator": d}, 0.5, sampler=NormalSampler(NoiseConfig(dim=1)), batch_size=4,
                        batches=2)
    with pytest.raises(RuntimeError, match="must hold the training examples"):
        avg.refresh_norms(force=True)
    avg.real = torch.arange(10.0)[:, None]
    avg.update(1)
    avg.refresh_norms()
    gen = torch.Generator().manual_seed(0)  # the same draws as the estimate's
    idx = torch.cat([torch.randint(0, 10, (4,), generator=gen) for _ in range(2)]).view(2, 4)
    acts = 3.0 * idx.double()
    bn = avg.copies["discriminator"][1]
    assert bn.running_mean.item() == pytest.approx(acts.mean(1).mean().item(), rel=1e-5)
    assert bn.running_var.item() == pytest.approx(acts.var(1).mean().item(), rel=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"train.ema must be in \[0, 1\)"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match=r"train\.ema_start must be >= 0"):
        TrainConfig(ema_start=-1)


def _generator_weight(state) -> torch.Tensor:
    return next(state.nets.generator.parameters()).detach().clone()


def test_a_run_checkpoints_its_average_and_is_sampled_evaluated_and_reopened_through_it():
    state = train(prepare("dcgan", tiny(train={"ema": 0.5}), out="runs/ema"), progress=False)
    assert state.average is not None
    ckpt = list_checkpoints(state.run_dir / "checkpoints")[-1]
    weights = load_file(str(ckpt / "weights.safetensors"))
    g_keys = {k for k in weights if k.startswith("generator.")}
    assert {k for k in weights if k.startswith("ema.")} == {f"ema.{k}" for k in g_keys}  # G only: D is not
    live, avg = _generator_weight(state), next(state.average.copies["generator"].parameters()).detach()
    assert not torch.equal(live, avg)
    with averaged(state):
        assert torch.equal(_generator_weight(state), avg)
        seen = evaluate(state, {})  # nested swaps put the same networks back
    assert seen == {} and torch.equal(_generator_weight(state), live)
    reopened = open_run(state.run_dir)  # sample, eval and export use the average
    card = json.loads((export_run(state.run_dir, out="exp") / "card.json").read_text())
    assert card["ema"] == 0.5
    assert torch.equal(_generator_weight(reopened), avg)
    assert torch.equal(next(reopened.nets.discriminator.parameters()).detach(),
                       next(state.nets.discriminator.parameters()).detach())


def test_resume_continues_the_average_exactly():
    full = train(prepare("dcgan", tiny(train={"steps": 8, "checkpoint_every": 4, "ema": 0.9}), out="runs/full"),
                 progress=False)
    part = train(prepare("dcgan", tiny(train={"steps": 4, "checkpoint_every": 4, "ema": 0.9}), out="runs/part"),
                 progress=False)
    resumed = prepare_resume(part.run_dir, steps=8)
    train(resumed, progress=False)
    for a, b in zip(full.average.copies["generator"].state_dict().values(),
                    resumed.average.copies["generator"].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_run_without_averaging_writes_no_average_and_loads_its_live_weights():
    state = train(prepare("dcgan", tiny(), out="runs/plain"), progress=False)
    assert state.average is None
    ckpt = list_checkpoints(state.run_dir / "checkpoints")[-1]
    assert not any(k.startswith("ema.") for k in load_file(str(ckpt / "weights.safetensors")))
    assert torch.equal(_generator_weight(open_run(state.run_dir)), _generator_weight(state))


def test_resuming_from_a_checkpoint_without_the_average_is_a_clear_error():
    state = train(prepare("dcgan", tiny(train={"ema": 0.9}), out="runs/cut"), progress=False)
    path = list_checkpoints(state.run_dir / "checkpoints")[-1] / "weights.safetensors"
    save_file({k: v for k, v in load_file(str(path)).items() if not k.startswith("ema.")}, str(path))
    with pytest.raises(CheckpointError, match=r"no averaged weights for generator, but the run trains with train\.ema"):
        prepare_resume(state.run_dir, steps=8)


def test_loading_a_checkpoint_restores_the_average_as_a_nan_rollback_needs():
    state = train(prepare("dcgan", tiny(train={"ema": 0.9}), out="runs/rb"), progress=False)
    ckpt = list_checkpoints(state.run_dir / "checkpoints")[-1]
    saved = load_file(str(ckpt / "weights.safetensors"))
    g = state.average.copies["generator"]
    with torch.no_grad():
        for p in g.parameters():
            p.fill_(float("nan"))  # what a diverged step folds into the average
    load_checkpoint(state, ckpt)
    for k, v in g.state_dict().items():
        assert torch.equal(v, saved[f"ema.generator.{k}"])


def test_live_takes_the_last_steps_weights_for_sample_eval_and_export(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    state = train(prepare("dcgan", tiny(train={"ema": 0.5}), out="runs/live"), progress=False)
    live, avg = _generator_weight(state), next(state.average.copies["generator"].parameters()).detach()
    reopened = open_run(state.run_dir, live=True)
    assert reopened.average is None and torch.equal(_generator_weight(reopened), live)
    with averaged(reopened):  # nothing to swap in: evaluation scores the live weights
        assert torch.equal(_generator_weight(reopened), live)
    assert torch.equal(_generator_weight(open_run(state.run_dir)), avg) and not torch.equal(avg, live)
    cards = {w: json.loads((export_run(state.run_dir, out=f"exp-{w}", live=w == "live") / "card.json").read_text())
             for w in ("live", "averaged")}
    assert {w: (c["weights"], c["ema"], c["averaged"]) for w, c in cards.items()} == {
        "live": ("live", 0.5, []), "averaged": ("averaged", 0.5, ["generator"])}
    runner = CliRunner()
    grids = {}
    for flag in ([], ["--live"]):
        out = tmp_path / f"grid{len(flag)}.png"
        res = runner.invoke(app, ["sample", str(state.run_dir), "-n", "4", "-o", str(out), *flag])
        assert res.exit_code == 0, res.output
        grids[len(flag)] = out.read_bytes()
    assert grids[0] != grids[1]
    for flag in ([], ["--live"]):  # each reading keeps its own report: neither replaces the other
        res = runner.invoke(app, ["eval", str(state.run_dir), "--metric", "fashion-quality", *flag])
        assert res.exit_code == 0, res.output
    reports = {p.name: json.loads(p.read_text()) for p in (state.run_dir / "eval").iterdir()}
    assert {name: r["weights"] for name, r in reports.items()} == {"step-0000006.json": "averaged",
                                                                  "step-0000006-live.json": "live"}
    assert reports["step-0000006.json"]["results"] != reports["step-0000006-live.json"]["results"]
    res = runner.invoke(app, ["eval", "exp-live/generator.onnx", "--live"])
    assert res.exit_code == 2 and "--live picks weights in a run folder" in res.output
