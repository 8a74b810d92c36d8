"""ssgan: the n+1-class loss on known logits, the balanced labelled subset, the networks, the metric and export."""

import json
import math

import numpy as np
import pytest
import torch

from gancore.averaging import averaged
from gancore.components import Batch, Step
from gancore.deploy import OnnxModel
from gancore.errors import ConfigError, DataError
from gancore.evaluate import applicable, evaluate
from gancore.export import export_run
from gancore.layers import reference_batch
from gancore.loop import prepare, prepare_resume, train
from gancore.runs import open_run
from gancore.state import balanced_labels
from gancore_plugins.ssgan import loss, metrics, nets
from tests.conftest import make_dist
from tests.fake_plugins import COLOUR_DATA

TINY = {"device": "cpu", "data": {"limit": 256, "labels_per_class": 2},
        "generator": {"hidden": 32}, "discriminator": {"hidden": [32, 16]},
        "train": {"steps": 4, "batch_size": 10, "log_every": 2, "sample_every": 2, "checkpoint_every": 2,
                  "sample_count": 4}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    state = prepare("ssgan", TINY, out=str(tmp_path_factory.mktemp("runs") / "ssgan-tiny"))
    train(state, progress=False)
    return state


# ---------------------------------------------------------------------------------------------- the n+1 loss


def test_d_is_z_over_z_plus_one_from_the_k_logits():
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    z = logits.exp().sum(1)
    explicit = torch.cat([logits, torch.zeros(2, 1)], 1).softmax(1)  # the K+1 softmax, fake logit 0
    assert torch.allclose(torch.sigmoid(loss.real_logit(logits)), z / (z + 1))
    assert torch.allclose(1 - explicit[:, -1], z / (z + 1))
    binary = torch.tensor([0.3, -1.0])  # a one-logit D's real/fake logits pass through unchanged
    assert torch.equal(loss.real_logit(binary), binary)


def test_unsupervised_loss_on_known_logits():
    k = 10
    zeros = torch.zeros(4, k)  # Z = K: D(x) = K / (K + 1)
    assert loss.unsupervised_loss(zeros, zeros).item() == pytest.approx(math.log((k + 1) / k) + math.log(k + 1))
    real, fake = torch.full((2, k), 20.0), torch.full((2, k), -20.0)  # a confident, correct D
    assert loss.unsupervised_loss(real, fake).item() < 1e-6
    t, lse = 0.9, math.log(k)
    smoothed = t * math.log1p(1 / k) + (1 - t) * math.log1p(k) + math.log(k + 1)
    assert loss.unsupervised_loss(zeros, zeros, real_label=t).item() == pytest.approx(smoothed)
    assert lse > 0


def test_d_loss_terms_and_the_generator_objectives(run):
    g = torch.Generator().manual_seed(0)
    batch = run.next_batch(10)
    latent = run.sampler.sample(10, g, run.device)
    terms = loss.SemiSupervised(loss.SemiSupervisedConfig()).discriminator_loss(
        Step("discriminator", batch, latent, run.nets, 0, 1))
    assert set(terms) == {"d_sup", "d_unsup"}
    d = run.nets.discriminator
    torch.manual_seed(1)
    ce = torch.nn.functional.cross_entropy(d(batch.x_labelled).logits, batch.y_labelled)
    assert terms["d_sup"].item() == pytest.approx(ce.item(), rel=0.5)  # D's noise layers differ per call
    for generator, key in [("feature-matching", "g_fm"), ("nonsaturating", "g_adv")]:
        cfg = loss.SemiSupervisedConfig(generator=generator)
        g_terms = loss.SemiSupervised(cfg).generator_loss(Step("generator", batch, latent, run.nets, 0, 1))
        assert set(g_terms) == {key} and torch.isfinite(g_terms[key])


def test_without_labels_the_loss_says_what_to_set(run):
    batch = Batch(x=run.data.x[:4])
    step = Step("discriminator", batch, run.sampler.sample(4, torch.Generator(), run.device), run.nets, 0, 1)
    with pytest.raises(ConfigError, match=r"data\.labels_per_class"):
        loss.SemiSupervised(loss.SemiSupervisedConfig()).discriminator_loss(step)


# ---------------------------------------------------------------------------------------------- labelled subset


def test_balanced_labels_are_balanced_and_seeded():
    y = torch.arange(10).repeat(50)[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    idx = balanced_labels(y, 7, seed=3)
    assert torch.equal(torch.bincount(y[idx]), torch.full((10,), 7))
    assert torch.equal(idx, balanced_labels(y, 7, seed=3))
    assert not torch.equal(idx, balanced_labels(y, 7, seed=4))
    with pytest.raises(DataError, match=r"class 0 has only 50 examples, fewer than data\.labels_per_class=51"):
        balanced_labels(y, 51, seed=0)
    with pytest.raises(DataError, match="class 'shoe' has only 50 examples"):  # named, where the data names them
        balanced_labels(y, 51, seed=0, classes=["shoe", *"abcdefghi"])


def test_too_few_examples_under_a_limit_name_the_limit(tmp_path):
    from gancore.config import merge

    cfg = merge(TINY, {"data": {"limit": 20, "labels_per_class": 5}})  # 20 examples: some class has fewer than 5
    with pytest.raises(DataError, match=r"class '.+' has only \d examples?, fewer than data\.labels_per_class=5, "
                                         r"among the 20 examples data\.limit keeps"):
        prepare("ssgan", cfg, out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before a run folder is made


def test_the_run_holds_its_labelled_subset_and_trains_on_everything(run):
    lx, ly = run.labelled
    assert lx.shape == (20, 1, 28, 28)
    assert torch.equal(torch.bincount(ly, minlength=10), torch.full((10,), 2))
    assert len(run.data) == 256  # every training image is still used unlabelled
    batch = run.next_batch(10)
    assert batch.x_labelled.shape == (10, 1, 28, 28) and batch.y_labelled.shape == (10,)


# ---------------------------------------------------------------------------------------------- networks


def test_discriminator_gives_k_logits_and_its_feature_layer(run):
    out = run.nets.discriminator(run.data.x[:3])
    assert out.logits.shape == (3, 10) and out.features.shape == (3, 16)


def test_minibatch_discrimination_and_no_weight_norm_are_options():
    d = nets.Discriminator(nets.DiscriminatorConfig(hidden=[8], minibatch_features=4, weight_norm=False),
                           (1, 28, 28), 10)
    assert d.mbd is not None and d.head.in_features == 12
    assert d(torch.zeros(2, 1, 28, 28)).logits.shape == (2, 10)


@pytest.mark.parametrize(("shape", "depth"), [((1, 28, 28), 0), ((3, 32, 32), 1), ((1, 8, 8), 0)])
def test_the_conv_discriminator_gives_k_logits_and_pooled_features(shape, depth):
    torch.manual_seed(0)
    d = nets.ConvDiscriminator(nets.ConvDiscriminatorConfig(channels=[8, 16], depth=depth), shape, 10)
    convs = [m for m in d.body if isinstance(m, torch.nn.Conv2d)]
    # per block: depth plain convolutions and a strided one; then a valid 3x3 where the map allows, two 1x1
    assert len(convs) == 2 * (depth + 1) + (shape[1] >= 20) + 2
    assert [c.stride for c in convs[depth::depth + 1][:2]] == [(2, 2), (2, 2)]
    x = torch.randn(5, *shape)
    out = d(x)
    assert out.logits.shape == (5, 10) and out.features.shape == (5, 16)
    assert not torch.equal(d(x).logits, out.logits)  # dropout in training
    d.eval()
    with torch.no_grad():  # no batch statistics: an example's output does not depend on its batch
        assert d.per_example and torch.allclose(d(x).logits[:2], d(x[:2]).logits, atol=1e-6)


def test_the_conv_discriminator_checks_its_config_and_takes_minibatch_features():
    with pytest.raises(ValueError, match="channels"):
        nets.ConvDiscriminatorConfig(channels=[])
    with pytest.raises(ValueError, match="dropout"):
        nets.ConvDiscriminatorConfig(dropout=1.0)
    d = nets.ConvDiscriminator(nets.ConvDiscriminatorConfig(channels=[4], minibatch_features=3, weight_norm=False),
                               (1, 28, 28), 10)
    assert d.head.in_features == 7 and not d.per_example
    assert d(torch.zeros(2, 1, 28, 28)).logits.shape == (2, 10)


@pytest.mark.parametrize(("dataset", "shape", "depth"), [("fashion-mnist", [1, 28, 28], 0),
                                                    ("colour-squares", [3, 16, 16], 1)])
def test_ssgan_trains_scores_and_exports_with_the_conv_discriminator(tmp_path, fake_site, dataset, shape, depth):
    # colour-squares: 3 x 16 x 16 colour images from a fake installed plugin (no colour dataset ships)
    make_dist(fake_site, "fake-colour", {"colour": "fake_colour"}, {"fake_colour": COLOUR_DATA})
    cfg = {**TINY, "data": {**TINY["data"], "name": dataset},
           "discriminator": {"name": "ssgan-conv", "channels": [4, 8], "depth": depth},
           "train": {**TINY["train"], "steps": 2}}
    state = train(prepare("ssgan", cfg, out=str(tmp_path / "conv")), progress=False)
    assert isinstance(state.nets.discriminator, nets.ConvDiscriminator)
    assert list(state.data_info["shape"]) == shape
    with torch.no_grad():
        assert list(state.nets.generator(**state.sampler.sample(2, torch.Generator(), torch.device("cpu"))).shape) \
            == [2, *shape]
    res = evaluate(state, applicable(state, ["ssgan-accuracy"]))
    assert 0.0 <= res["ssgan-accuracy/test_accuracy"] <= 1.0
    dest = export_run(state.run_dir, ["onnx"], out=tmp_path / "e")
    clf = json.loads((dest / "card.json").read_text())["models"]["classifier"]
    assert max(clf["onnx"]["max_abs_diff"].values()) <= 1e-4
    probs, _ = OnnxModel(dest / "classifier.onnx", kind="classifier").run({"images": state.data.x[:4].numpy()})
    assert probs.shape == (4, 10)


def test_virtual_batch_norm_generator_saves_its_reference_batch(tmp_path):
    cfg = {**TINY, "generator": {"hidden": 32, "norm": "virtual", "reference_size": 16}}
    state = train(prepare("ssgan", cfg, out="runs/vbn"), progress=False)
    g = state.nets.generator
    ref = reference_batch(g, g.latent)["noise"].clone()
    assert ref.shape == (16, 100)
    resumed = prepare_resume(state.run_dir, steps=6)
    assert torch.equal(reference_batch(resumed.nets.generator, g.latent)["noise"], ref)
    saved = resumed.nets.generator.state_dict()
    for k, v in g.state_dict().items():  # the recorded statistics, which eval and export read, travel too
        if k.endswith(("ref_mean", "ref_sq")):
            assert torch.equal(saved[k], v), k
    g.eval()
    with torch.no_grad():  # in eval an image does not depend on its batch
        z = torch.rand(5, 100)
        assert torch.allclose(g(noise=z)[:2], g(noise=z[:2]), atol=1e-6)
    dest = export_run(state.run_dir, ["onnx"], out=tmp_path / "e")  # the recorded statistics export as constants
    assert max(json.loads((dest / "card.json").read_text())["models"]["generator"]["onnx"]["max_abs_diff"]
               .values()) <= 1e-4


# ---------------------------------------------------------------------------------------------- metric, export


def test_predict_takes_the_argmax_of_the_class_logits():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            from gancore.components import DOut

            return DOut(logits=x)

    x = torch.tensor([[0.1, 2.0, -1.0], [5.0, 0.0, 0.0]])
    assert metrics.predict(Fixed(), x, batch=1).tolist() == [1, 0]


def test_gan_eval_reports_the_test_accuracy(run):
    res = evaluate(run, applicable(run, ["ssgan-accuracy"]))
    assert 0.0 <= res["ssgan-accuracy/test_accuracy"] <= 1.0


def _first_weight(d: torch.nn.Module) -> torch.Tensor:
    return next(d.parameters()).detach().clone()


def test_the_recipe_scores_and_reopens_d_through_its_weight_average(run):
    assert set(run.average.copies) == {"generator", "discriminator"}
    avg, live = _first_weight(run.average.copies["discriminator"]), _first_weight(run.nets.discriminator)
    assert not torch.equal(avg, live)
    seen = {}

    class Spy(metrics.TestAccuracy):
        def __call__(self, state):
            seen["d"] = _first_weight(state.nets.discriminator)
            return super().__call__(state)

    evaluate(run, {"ssgan-accuracy": Spy()})
    assert torch.equal(seen["d"], avg)  # evaluation, as at train.eval_every, reads the average
    assert torch.equal(_first_weight(open_run(run.run_dir).nets.discriminator), avg)
    assert torch.equal(_first_weight(open_run(run.run_dir, live=True).nets.discriminator), live)


def test_classifier_export_is_parity_checked_and_runs_alone(run, tmp_path):
    dest = export_run(run.run_dir, ["onnx"], out=tmp_path / "e")
    card = json.loads((dest / "card.json").read_text())
    clf = card["models"]["classifier"]
    assert clf["outputs"] == ["probabilities", "real_probability"]
    assert max(clf["onnx"]["max_abs_diff"].values()) <= 1e-4
    model = OnnxModel(dest / "classifier.onnx", kind="classifier")
    x = run.data.x[:6].numpy()
    probs, real = model.run({"images": x})
    assert probs.shape == (6, 10) and np.allclose(probs.sum(1), 1, atol=1e-5) and real.shape == (6,)
    with averaged(run), torch.no_grad():  # the recipe exports D's weight average
        d = run.nets.discriminator.eval()
        want = torch.softmax(d(torch.from_numpy(x)).logits, 1).numpy()
        d.train()
    assert np.allclose(probs, want, atol=1e-4)


def test_one_forward_over_all_batches_equals_one_per_batch(run):
    d = run.nets.discriminator.eval()  # no noise, so the two ways can be compared number for number
    assert d.per_example
    batch = run.next_batch(10)
    latent = run.sampler.sample(10, torch.Generator().manual_seed(0), run.device)
    together = Step("discriminator", batch, latent, run.nets, 0, 1)
    together.d_together({"d_labelled": batch.x_labelled, "d_real": together.real, "d_fake": together.fake})
    apart = Step("discriminator", batch, latent, run.nets, 0, 1)
    with torch.no_grad():
        for key, x in [("d_real", batch.x), ("d_fake", apart.fake), ("d_labelled", batch.x_labelled)]:
            want = d(x)
            got = together.cached(key, lambda: None)
            assert torch.allclose(got.logits, want.logits, atol=1e-5)
            assert torch.allclose(got.features, want.features, atol=1e-5)
    d.train()
    mbd = nets.Discriminator(nets.DiscriminatorConfig(hidden=[8], minibatch_features=2), (1, 28, 28), 10)
    assert not mbd.per_example  # its outputs depend on the batch: never concatenated
