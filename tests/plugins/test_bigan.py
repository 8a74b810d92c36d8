"""bigan: the pair discriminator's loss on known logits, who trains what, the probes, pictures and export."""

import json
import math

import numpy as np
import pytest
import torch

from gancore.augment import random_shift
from gancore.components import Batch, Step
from gancore.deploy import OnnxModel
from gancore.errors import ConfigError
from gancore.export import export_run
from gancore.loop import prepare, prepare_resume, train
from gancore.runs import open_run
from gancore.sampling import eval_mode
from gancore_plugins.bigan import loss, nets, probes

TINY = {"device": "cpu", "data": {"limit": 128},
        "generator": {"width": 8}, "discriminator": {"width": 8, "hidden": 16},
        "networks": {"encoder": {"name": "bigan", "group": "generator", "width": 8, "hidden": 16}},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "sample_every": 2, "checkpoint_every": 2,
                  "sample_count": 4}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    state = prepare("bigan", TINY, out=str(tmp_path_factory.mktemp("runs") / "bigan-tiny"))
    train(state, progress=False)
    return state


# ---------------------------------------------------------------------------------------------- the pair loss


def test_pair_losses_on_known_logits():
    zero = torch.zeros(3)  # D(pair) = 1/2 everywhere: each side pays log 2 per term
    d, ge = loss.pair_losses(zero, zero)
    assert d.item() == pytest.approx(2 * math.log(2)) and ge.item() == pytest.approx(2 * math.log(2))
    real, fake = torch.tensor([4.0, 1.0]), torch.tensor([-2.0, 0.5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    d, ge = loss.pair_losses(real, fake)
    assert d.item() == pytest.approx((bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))).item(), rel=1e-6)
    # G and E play the swapped labels: (G(z), z) called real, (x, E(x)) called fake
    assert ge.item() == pytest.approx((bce(fake, torch.ones(2)) + bce(real, torch.zeros(2))).item(), rel=1e-6)
    smooth, _ = loss.pair_losses(real, fake, real_label=0.9)
    assert smooth.item() == pytest.approx((bce(real, torch.full((2,), 0.9)) + bce(fake, torch.zeros(2))).item(),
                                          rel=1e-6)


def _grads(state, phase):
    for m in state.nets.named().values():
        m.zero_grad(set_to_none=True)
    batch = state.next_batch(8)
    latent = state.sampler.sample(8, torch.Generator().manual_seed(0), state.device)
    step = Step(phase, batch, latent, state.nets, 0, 1)
    lossfn = loss.BiGANLoss(loss.BiGANLossConfig())
    terms = lossfn.discriminator_loss(step) if phase == "discriminator" else lossfn.generator_loss(step)
    sum(terms.values()).backward()
    return {role: any(p.grad is not None for p in m.parameters()) for role, m in state.nets.named().items()}


def test_d_step_trains_d_and_ge_step_reaches_g_and_e(run):
    assert _grads(run, "discriminator") == {"generator": False, "discriminator": True, "encoder": False}
    got = _grads(run, "generator")
    assert got["generator"] and got["encoder"]
    assert run.nets.group_of("encoder") == "generator"
    e_params = {id(p) for p in run.nets.extra["encoder"].parameters()}
    assert e_params <= {id(p) for p in run.opt_g.param_groups[0]["params"]}


@pytest.fixture(scope="module")
def unary_run(tmp_path_factory):
    cfg = {**TINY, "discriminator": {**TINY["discriminator"], "unary": True}}
    state = prepare("bigan", cfg, out=str(tmp_path_factory.mktemp("runs") / "bigan-unary"))
    train(state, progress=False)
    return state


def test_unary_scores_join_the_game_and_each_reaches_its_own_network(unary_run):
    state = unary_run
    batch = state.next_batch(8)
    latent = state.sampler.sample(8, torch.Generator().manual_seed(0), state.device)
    lossfn = loss.BiGANLoss(loss.BiGANLossConfig())
    d_terms = lossfn.discriminator_loss(Step("discriminator", batch, latent, state.nets, 0, 1))
    assert list(d_terms) == ["d_adv", "d_unary_x", "d_unary_z"]
    d = state.nets.discriminator.eval()  # no dropout: the heads can be recomputed exactly
    with torch.no_grad():
        z_real = state.nets.extra["encoder"].eval()(batch.x)
        real, fake = d(batch.x, noise=z_real), d(state.nets.generator.eval()(**latent), **latent)
        step = Step("discriminator", batch, latent, state.nets, 0, 1)
        for name in ("unary_x", "unary_z"):  # the same game, on each unary score
            assert lossfn.discriminator_loss(step)[f"d_{name}"].item() == pytest.approx(
                loss.pair_losses(real.heads[name], fake.heads[name])[0].item(), rel=1e-5)
    # G's step: the score of x alone reaches G (through G(z)) and not E; the score of z alone reaches E only
    def grads(role):
        return [p.grad for p in state.nets.named()[role].parameters() if p.grad is not None]

    step = Step("generator", batch, latent, state.nets, 0, 1)
    for term, trained, untouched in (("ge_unary_x", "generator", "encoder"), ("ge_unary_z", "encoder", "generator")):
        for m in state.nets.named().values():
            m.zero_grad(set_to_none=True)
        lossfn.generator_loss(step)[term].backward()
        assert any(g.abs().sum() > 0 for g in grads(trained))
        assert all(g.abs().sum() == 0 for g in grads(untouched))
    for m in state.nets.named().values():
        m.train()


def test_cycle_terms_are_the_reconstruction_errors_and_reach_g_and_e(run):
    state = run
    batch = state.next_batch(8)
    latent = state.sampler.sample(8, torch.Generator().manual_seed(0), state.device)
    lossfn = loss.BiGANLoss(loss.BiGANLossConfig(cycle_x=2.0, cycle_z=0.5))
    g, e = state.nets.generator, state.nets.extra["encoder"]
    with eval_mode(g, e):  # batch norm fixed, so the terms can be recomputed exactly
        step = Step("generator", batch, latent, state.nets, 0, 1)
        terms = lossfn.generator_loss(step)
        assert list(terms) == ["ge_adv", "ge_cycle_x", "ge_cycle_z"]
        with torch.no_grad():
            x, z = batch.x, latent["noise"]
            assert terms["ge_cycle_x"].item() == pytest.approx(2.0 * ((g(noise=e(x)) - x) ** 2).mean().item(),
                                                               rel=1e-5)
            assert terms["ge_cycle_z"].item() == pytest.approx(0.5 * ((e(g(noise=z)) - z) ** 2).mean().item(),
                                                               rel=1e-5)
    for term in ("ge_cycle_x", "ge_cycle_z"):  # each cycle runs through both G and E, never D
        for m in state.nets.named().values():
            m.zero_grad(set_to_none=True)
        lossfn.generator_loss(Step("generator", batch, latent, state.nets, 0, 1))[term].backward()
        for role in ("generator", "encoder"):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in state.nets.named()[role].parameters())
        assert all(p.grad is None for p in state.nets.discriminator.parameters())
    # off by default, and D's step never has them
    assert list(loss.BiGANLoss(loss.BiGANLossConfig()).generator_loss(step)) == ["ge_adv"]
    assert list(lossfn.discriminator_loss(Step("discriminator", batch, latent, state.nets, 0, 1))) == ["d_adv"]
    for bad in ({"cycle_x": -1.0}, {"cycle_z": -0.1}, {"consistency": -1.0}):
        with pytest.raises(ValueError, match="cycle_x, cycle_z and consistency must be >= 0"):
            loss.BiGANLossConfig(**bad)
    with pytest.raises(ValueError, match="consistency_shift must be >= 1 pixel"):
        loss.BiGANLossConfig(consistency=1.0, consistency_shift=0)


def test_the_consistency_term_pulls_e_of_a_moved_copy_towards_e_of_x_and_trains_e_alone(run):
    state = run
    batch = state.next_batch(8)
    latent = state.sampler.sample(8, torch.Generator().manual_seed(0), state.device)
    lossfn = loss.BiGANLoss(loss.BiGANLossConfig(consistency=2.0, consistency_shift=3))
    g, e, d = state.nets.generator, state.nets.extra["encoder"], state.nets.discriminator
    # eval mode, no dropout: the shift is the step's first random draw, so it can be redrawn; autograd stays on
    with eval_mode(g, e, d), torch.enable_grad():
        torch.manual_seed(5)
        terms = lossfn.generator_loss(Step("generator", batch, latent, state.nets, 0, 1))
        assert list(terms) == ["ge_adv", "ge_consistency"]
        torch.manual_seed(5)
        moved = random_shift(batch.x, 3)
        assert not torch.equal(moved, batch.x)
        expected = 2.0 * ((e(moved) - e(batch.x).detach()) ** 2).mean()
        assert terms["ge_consistency"].item() == pytest.approx(expected.item(), rel=1e-5)
        # E(x) is the fixed target: the term's gradient is that of the moved reading alone
        params = list(e.parameters())
        got = torch.autograd.grad(terms["ge_consistency"], params, allow_unused=True)
        want = torch.autograd.grad(expected, params, allow_unused=True)
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(got, want, strict=True) if b is not None)
        both = torch.autograd.grad(2.0 * ((e(moved) - e(batch.x)) ** 2).mean(), params)
        assert any(not torch.allclose(a, b) for a, b in zip(got, both, strict=True))
    for m in state.nets.named().values():
        m.zero_grad(set_to_none=True)
    lossfn.generator_loss(Step("generator", batch, latent, state.nets, 0, 1))["ge_consistency"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in e.parameters())
    assert all(p.grad is None for p in (*g.parameters(), *d.parameters()))


def test_the_cycles_leave_g_and_e_batch_norm_statistics_to_what_each_serves(run):
    """G's running statistics come from the prior and E's from real images: a step with both cycles moves
    them exactly as a step without them does."""
    batch = run.next_batch(8)
    latent = run.sampler.sample(8, torch.Generator().manual_seed(0), run.device)
    g, e = run.nets.generator, run.nets.extra["encoder"]
    start = [{k: v.clone() for k, v in m.state_dict().items()} for m in (g, e)]

    def running() -> dict[str, torch.Tensor]:
        return {f"{i}.{k}": v.clone() for i, m in enumerate((g, e)) for k, v in m.state_dict().items()
                if "running" in k}

    before, after = running(), []
    for cfg in (loss.BiGANLossConfig(), loss.BiGANLossConfig(cycle_x=2.0, cycle_z=0.5)):
        for m, s in zip((g, e), start, strict=True):
            m.load_state_dict(s)
        loss.BiGANLoss(cfg).generator_loss(Step("generator", batch, latent, run.nets, 0, 1))
        after.append(running())
    assert len(before) >= 4 and all(torch.equal(after[0][k], after[1][k]) for k in before)
    assert all(not torch.equal(after[0][k], before[k]) for k in before)  # the step itself moves both networks'
    for m, s in zip((g, e), start, strict=True):
        m.load_state_dict(s)


def test_the_recipe_trains_with_the_x_cycle_and_the_consistency_term_and_logs_them(run):
    cfg = run.config["loss"]
    assert cfg["cycle_x"] == 3.0 and cfg.get("cycle_z", 0.0) == 0.0
    assert cfg["consistency"] == 1.0 and cfg["consistency_shift"] == 4
    logged = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    for term in ("ge_cycle_x", "ge_consistency"):
        values = [r[term] for r in logged if term in r]
        assert values and all(v > 0 for v in values)
    assert not any("ge_cycle_z" in r for r in logged)


def test_without_an_encoder_the_loss_says_where_to_add_it(run):
    from gancore.components import Nets

    bare = Nets(generator=run.nets.generator, discriminator=run.nets.discriminator)
    step = Step("discriminator", Batch(x=run.data.x[:4]), run.sampler.sample(4, torch.Generator(), run.device),
                bare, 0, 1)
    with pytest.raises(ConfigError, match=r"networks\.encoder"):
        loss.BiGANLoss(loss.BiGANLossConfig()).discriminator_loss(step)


def test_the_pair_discriminator_reads_x_and_z(run):
    d = run.nets.discriminator.eval()
    x = run.data.x[:4]
    z = torch.rand(4, 50) * 2 - 1
    a, b = d(x, noise=z).logits, d(x, noise=-z).logits
    assert a.shape == (4,) and not torch.allclose(a, b)  # the same images with other codes: another verdict
    d.train()


def test_the_encoder_dense_layer_is_optional_and_a_linear_head_keeps_its_keys():
    from gancore.components import LatentSpec

    latent = [LatentSpec(name="noise", shape=(50,), distribution="uniform")]
    x = torch.randn(4, 1, 28, 28)
    plain = nets.Encoder(nets.EncoderConfig(width=8), latent, (1, 28, 28))
    dense = nets.Encoder(nets.EncoderConfig(width=8, hidden=16), latent, (1, 28, 28))
    assert plain(x).shape == dense(x).shape == (4, 50)
    assert all(k.startswith("net.") for k in plain.state_dict())  # checkpoints from before the option still load
    assert plain.net.head.out_features == 50 and dense.net.head.out_features == 16
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in dense.head.modules())
    one = nets.Encoder(nets.EncoderConfig(width=8, hidden=16), [LatentSpec(name="noise", shape=(1,),
                                                                          distribution="uniform")], (1, 28, 28))
    assert one(x).shape == (4, 1)
    with pytest.raises(ValueError, match="hidden must be >= 0"):
        nets.EncoderConfig(hidden=-1)


def test_bigan_needs_one_continuous_latent():
    from gancore.components import LatentSpec

    with pytest.raises(ValueError, match="one continuous 1-D latent"):
        nets.latent_of([LatentSpec("noise", (4,), "normal"), LatentSpec("c", (1,), "categorical", "int64",
                                                                           classes=3)])


# ---------------------------------------------------------------------------------------------- probes


def test_nearest_neighbour_and_linear_probe_on_separable_points():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    y = torch.arange(3).repeat(40)
    x = centres[y] + 0.3 * torch.randn(len(y), 2, generator=g)
    assert probes.nearest_neighbour(x, y, x + 0.01, y) == 1.0
    assert probes.linear_probe(x[:90], y[:90], x[90:], y[90:]) == 1.0
    noise = torch.randn(len(y), 2, generator=g)  # features that know nothing: about chance
    assert probes.linear_probe(noise[:90], y[:90], noise[90:], y[90:]) < 0.7


def test_the_random_encoder_is_the_same_architecture_freshly_drawn(run):
    e = run.nets.extra["encoder"]
    r1, r2 = probes.random_like(e, seed=0), probes.random_like(e, seed=0)
    assert [n for n, _ in r1.named_parameters()] == [n for n, _ in e.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(r1.parameters(), r2.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(r1.parameters(), e.parameters(), strict=True))


def test_probe_metric_reports_every_feature_set(run):
    from gancore.evaluate import applicable, evaluate

    res = evaluate(run, applicable(run, ["bigan-probes"]))
    for name in ("encoder", "random", "pixels"):
        for probe in ("nn1", "linear"):
            assert 0.0 <= res[f"bigan-probes/{name}_{probe}"] <= 1.0
    assert res["bigan-probes/reconstruction_mse"] > 0


# ---------------------------------------------------------------------------------------------- pictures, export


def test_reconstruction_pictures_and_the_encoder_in_checkpoints(run):
    assert (run.run_dir / "samples" / "reconstructions-step-0000004.png").exists()
    resumed = prepare_resume(run.run_dir, steps=6)
    saved = resumed.nets.extra["encoder"].state_dict()
    assert saved.keys() == run.nets.extra["encoder"].state_dict().keys()
    assert any(k.endswith("running_mean") for k in saved)  # batch-norm statistics travel too
    for a, b in zip(resumed.nets.extra["encoder"].parameters(), run.nets.extra["encoder"].parameters(),
                    strict=True):
        assert torch.equal(a, b)


def test_on_images_without_a_test_split_the_reconstructions_show_training_images(tmp_path):
    from PIL import Image

    from tests.conftest import paint_classes

    paint_classes(tmp_path / "imgs")  # no test/ folder
    cfg = {**TINY, "data": {"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
           "train": {**TINY["train"], "batch_size": 4}}
    state = train(prepare("bigan", cfg, out=str(tmp_path / "run")), progress=False)
    pic = state.run_dir / "samples" / "reconstructions-step-0000004.png"
    with Image.open(pic) as im:
        assert im.mode == "RGB" and im.size[1] == 2 * (32 + 2) + 2  # 6 images: one row of reals, one of G(E(x))


def test_encoder_export_is_parity_checked_and_feeds_the_generator(run, tmp_path):
    dest = export_run(run.run_dir, ["onnx"], out=tmp_path / "e")
    card = json.loads((dest / "card.json").read_text())
    assert card["models"]["encoder"]["outputs"] == ["latent"]
    assert max(card["models"]["encoder"]["onnx"]["max_abs_diff"].values()) <= 1e-4
    enc = OnnxModel(dest / "encoder.onnx", kind="encoder")
    z = enc.run({"images": run.data.x[:3].numpy()})[0]
    assert z.shape == (3, 50)
    gen = OnnxModel(dest / "generator.onnx")
    assert gen.session.run(None, {"noise": z})[0].shape == (3, 1, 28, 28)  # x -> E(x) -> G(E(x)) with ORT alone
    e = open_run(run.run_dir, device="cpu").nets.extra["encoder"].eval()  # the checkpoint that was exported
    with torch.no_grad():
        assert np.abs(z - e(run.data.x[:3]).numpy()).max() < 1e-4
