"""Weight averaging (train.ema): the update on known weights, which networks it covers, checkpoints and use."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gancore.averaging import WeightAverage, averaged
from gancore.checkpoint import list_checkpoints
from gancore.components import Nets
from gancore.config import TrainConfig
from gancore.evaluate import evaluate
from gancore.export import export_run
from gancore.loop import prepare, prepare_resume, train
from gancore.runs import open_run
from tests.conftest import tiny


def _nets() -> Nets:
    g = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    encoder = nn.Linear(1, 1, bias=False)
    critic = nn.Linear(1, 1, bias=False)
    for m, w in ((g[0], 1.0), (encoder, 1.0), (critic, 1.0)):
        nn.init.constant_(m.weight, w)
    return Nets(generator=g, discriminator=nn.Linear(1, 1), extra={"encoder": encoder, "critic": critic},
                groups={"encoder": "generator", "critic": "discriminator"})


def test_each_update_moves_the_average_a_one_minus_decay_share_towards_the_live_weights():
    nets = _nets()
    avg = WeightAverage(nets, decay=0.75)
    assert sorted(avg.copies) == ["encoder", "generator"]  # the generator group only
    g = nets.generator
    with torch.no_grad():
        g[0].weight.fill_(5.0)  # the average starts at the initial weights, 1.0
    avg.update(1)
    assert avg.copies["generator"][0].weight.item() == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)
    avg.update(2)
    assert avg.copies["generator"][0].weight.item() == pytest.approx(0.75 * 2.0 + 0.25 * 5.0)
    assert avg.copies["encoder"].weight.item() == pytest.approx(1.0)  # never moved
    assert not any(p.requires_grad for m in avg.copies.values() for p in m.parameters())


def test_batch_norm_statistics_are_averaged_and_counters_copied():
    nets = _nets()
    avg = WeightAverage(nets, decay=0.5)
    bn = nets.generator[1]
    bn(torch.full((4, 1), 3.0) + torch.arange(4.0).view(4, 1))  # training mode: running stats move
    avg.update(1)
    copy_bn = avg.copies["generator"][1]
    assert copy_bn.running_mean.item() == pytest.approx(0.5 * 0.0 + 0.5 * bn.running_mean.item())
    assert copy_bn.num_batches_tracked.item() == 1


def test_before_the_start_step_the_average_follows_the_live_weights():
    nets = _nets()
    avg = WeightAverage(nets, decay=0.9, start=2)
    w = nets.generator[0].weight
    for step, value in ((1, 3.0), (2, 4.0)):
        with torch.no_grad():
            w.fill_(value)
        avg.update(step)
        assert avg.copies["generator"][0].weight.item() == value
    with torch.no_grad():
        w.fill_(14.0)
    avg.update(3)
    assert avg.copies["generator"][0].weight.item() == pytest.approx(0.9 * 4.0 + 0.1 * 14.0)


def test_swapped_in_replaces_the_generator_group_and_puts_it_back_after_an_error():
    nets = _nets()
    live = dict(nets.named())
    avg = WeightAverage(nets, decay=0.9)
    with pytest.raises(RuntimeError), avg.swapped_in(nets):
        assert nets.generator is avg.copies["generator"] and nets.extra["encoder"] is avg.copies["encoder"]
        assert nets.extra["critic"] is live["critic"] and nets.discriminator is live["discriminator"]
        raise RuntimeError("boom")
    assert nets.named() == live


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"train.ema must be in \[0, 1\)"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="train.ema_start must be >= 0"):
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
