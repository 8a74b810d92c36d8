"""infogan: the latent layout, the MI loss on known inputs, Q, the code metrics, traversals, export and bad codes."""

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gancore.components import Batch, LatentSpec, Nets, Step, draw
from gancore.config import parse_sets
from gancore.deploy import OnnxModel
from gancore.errors import ConfigError, ExportError, GanError
from gancore.export import export_run
from gancore.layers import LatentInput
from gancore.loop import prepare, train
from gancore.plugins import get_manager
from gancore.resolve import resolve_config
from gancore.sampling import traversal_images, traversal_latent
from gancore_cli.app import app
from gancore_plugins.infogan import latent, metrics, mi, nets

TINY = {"device": "cpu", "data": {"limit": 128},
        "generator": {"width": 8, "hidden": 32}, "discriminator": {"width": 8, "hidden": 32, "q_hidden": 16},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "sample_every": 2, "checkpoint_every": 2,
                  "sample_count": 4}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    state = prepare("infogan", TINY, out=str(tmp_path_factory.mktemp("runs") / "infogan-tiny"))
    train(state, progress=False)
    return state.run_dir


@pytest.fixture(scope="module")
def export(run, tmp_path_factory):
    return export_run(run, ["onnx", "onnx-fp16", "pt2"], out=tmp_path_factory.mktemp("exp") / "infogan-tiny")


# ---------------------------------------------------------------------------------------------- latent layout


def test_default_layout_is_the_papers():
    specs = latent.latent_specs(latent.InfoLatentConfig())
    assert [s.to_json() for s in specs] == [
        {"name": "noise", "shape": [62], "dtype": "float32", "distribution": "uniform", "low": -1.0, "high": 1.0},
        {"name": "categorical", "shape": [1], "dtype": "int64", "distribution": "categorical", "classes": 10},
        {"name": "continuous", "shape": [2], "dtype": "float32", "distribution": "uniform", "low": -1.0, "high": 1.0}]


def test_layout_is_configurable_with_set():
    cfg = resolve_config(get_manager(), "infogan", parse_sets(
        ["sampler.noise=10", "sampler.noise_distribution=normal", "sampler.categorical=[10, 3]",
         "sampler.continuous=0"]))
    sampler = get_manager().registries.samplers.build("infogan", {k: v for k, v in cfg["sampler"].items()
                                                                  if k != "name"}, where="sampler")
    noise, cat = sampler.specs
    assert noise.distribution == "normal" and noise.shape == (10,)
    assert cat.shape == (2,) and cat.categories == (10, 3) and cat.classes == 10
    x = draw(cat, 5000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x[:, 0].max() == 9 and x[:, 1].max() == 2 and x.min() == 0  # each code within its own size
    assert torch.bincount(x[:, 1]).min() > 1500  # uniform over the 3 classes


@pytest.mark.parametrize("sets, pattern", [
    (["sampler.categorical=[1]"], "2 or more classes"),
    (["sampler.categorical=[]", "sampler.continuous=0"], "at least one code"),
    (["sampler.noise_distribution=cauchy"], "normal"),
    (["sampler.continuous=-1"], ">= 0")])
def test_bad_layouts_are_refused(sets, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve_config(get_manager(), "infogan", parse_sets(sets))


def test_codes_of_different_sizes_are_one_hot_each_at_its_size():
    spec = LatentSpec("categorical", (2,), "categorical", dtype="int64", classes=4, categories=(4, 2))
    inp = LatentInput([spec])
    assert inp.dim == 6
    v = inp({"categorical": torch.tensor([[3, 1], [0, 0]])})
    assert v.tolist() == [[0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match="one class count"):
        LatentSpec("c", (2,), "categorical", dtype="int64", classes=4, categories=(4,))


# ---------------------------------------------------------------------------------------------- the MI loss


def test_categorical_term_is_cross_entropy_summed_over_codes():
    logits = torch.zeros(4, 2, 5)  # Q knows nothing: -log(1/5) per code
    codes = torch.tensor([[0, 1], [2, 3], [4, 0], [1, 1]])
    assert mi.categorical_nll(logits, codes).item() == pytest.approx(2 * math.log(5))
    sure = torch.full((4, 2, 5), -30.0).scatter(2, codes.unsqueeze(2), 30.0)  # Q reads every code
    assert mi.categorical_nll(sure, codes).item() == pytest.approx(0.0, abs=1e-6)


def test_continuous_term_is_the_gaussian_nll():
    g = torch.Generator().manual_seed(0)
    mean, codes, logstd = torch.randn(6, 2, generator=g), torch.rand(6, 2, generator=g) * 2 - 1, torch.randn(6, 2,
                                                                                                             generator=g)
    fixed = -torch.distributions.Normal(mean, 1.0).log_prob(codes).sum(1).mean()
    learned = -torch.distributions.Normal(mean, logstd.exp()).log_prob(codes).sum(1).mean()
    assert mi.gaussian_nll(mean, codes).item() == pytest.approx(fixed.item(), rel=1e-6)
    assert mi.gaussian_nll(mean, codes, logstd).item() == pytest.approx(learned.item(), rel=1e-6)
    assert mi.gaussian_nll(codes, codes).item() == pytest.approx(2 * 0.5 * math.log(2 * math.pi))


def test_real_data_clustering_term_on_known_logits():
    k = 4
    uniform = torch.zeros(8, 1, k)  # unsure about everything: H(c|x) = H(c) = log k
    assert mi.clustering_entropy(uniform).item() == pytest.approx(0.0, abs=1e-6)
    balanced = torch.full((8, 1, k), -40.0).scatter(2, (torch.arange(8) % k).view(8, 1, 1), 40.0)
    assert mi.clustering_entropy(balanced).item() == pytest.approx(-math.log(k), abs=1e-5)  # the minimum
    collapsed = torch.full((8, 1, k), -40.0).scatter(2, torch.zeros(8, 1, 1, dtype=torch.long), 40.0)
    assert mi.clustering_entropy(collapsed).item() == pytest.approx(0.0, abs=1e-5)  # sure, but one cluster


def _nets(**dcfg):
    specs = latent.latent_specs(latent.InfoLatentConfig(noise=4, categorical=[3, 2], continuous=2))
    g = nets.Generator(nets.GeneratorConfig(width=4, hidden=16), specs, (1, 28, 28))
    d = nets.Discriminator(nets.DiscriminatorConfig(width=4, hidden=16, q_hidden=8, **dcfg), specs, (1, 28, 28))
    return specs, Nets(generator=g, discriminator=d)


def test_q_shares_the_body_and_pads_the_smaller_code():
    _, n = _nets(q_variance="learned")
    out = n.discriminator(torch.randn(5, 1, 28, 28))
    assert out.logits.shape == (5,) and out.heads["q_cat"].shape == (5, 2, 3)
    assert set(out.heads) == {"q_cat", "q_cont_mean", "q_cont_logstd"}
    assert out.heads["q_cat"].softmax(2)[:, 1, 2].max() < 1e-6  # the 2-way code has no third class
    q_ids = {id(p) for p in n.discriminator.generator_parameters()}
    body_ids = {id(p) for p in n.discriminator.body.parameters()}
    assert q_ids and not q_ids & body_ids


def test_q_is_updated_with_both_g_and_d():
    _, n = _nets()
    g_ids = {id(p) for p in n.parameters_of("generator")}
    d_ids = {id(p) for p in n.parameters_of("discriminator")}
    q_ids = {id(p) for p in n.discriminator.generator_parameters()}
    assert q_ids <= g_ids and q_ids <= d_ids
    assert not {id(p) for p in n.discriminator.body.parameters()} & g_ids


@pytest.mark.parametrize("phase", ["discriminator", "generator"])
def test_mi_term_reaches_the_right_networks(phase):
    specs, n = _nets()
    z = {s.name: draw(s, 6, torch.Generator().manual_seed(1), torch.device("cpu")) for s in specs}
    step = Step(phase, Batch(x=torch.randn(6, 1, 28, 28)), z, n, 0, 1)
    cfg = mi.MutualInfoConfig(lambda_cat=1.0, lambda_cont=0.5, lambda_real=0.5, lambda_aug=1.0)
    terms = mi.MutualInfo(cfg)(step)
    real_term = {"d_cluster_real", "d_aug_real"} if phase == "discriminator" else set()  # D's business
    assert set(terms) == {f"{phase[0]}_mi_cat", f"{phase[0]}_mi_cont"} | real_term
    sum(terms.values()).backward()
    g_grad = any(p.grad is not None for p in n.generator.parameters())
    assert g_grad == (phase == "generator")  # D's step sees a detached fake
    assert n.discriminator.q_cat.weight.grad is not None


def test_mi_without_a_q_head_is_a_clear_error():
    from gancore_plugins.dcgan.nets import Discriminator, DiscriminatorConfig

    specs, n = _nets()
    n.discriminator = Discriminator(DiscriminatorConfig(width=8), (1, 28, 28))
    z = {s.name: draw(s, 4, torch.Generator().manual_seed(1), torch.device("cpu")) for s in specs}
    with pytest.raises(ConfigError, match="Q head"):
        mi.MutualInfo(mi.MutualInfoConfig())(Step("generator", Batch(x=torch.randn(4, 1, 28, 28)), z, n, 0, 1))
    noise_only = {"noise": z["noise"]}
    with pytest.raises(ConfigError, match="latent with codes"):
        mi.MutualInfo(mi.MutualInfoConfig())(Step("generator", Batch(x=torch.randn(4, 1, 28, 28)), noise_only, n,
                                                  0, 1))


# ---------------------------------------------------------------------------------------------- code metrics


def test_matched_accuracy_undoes_a_relabelling():
    labels = np.repeat(np.arange(10), 20)
    perm = np.random.default_rng(0).permutation(10)
    assert metrics.matched_accuracy(perm[labels], labels) == 1.0
    assert metrics.nmi(perm[labels], labels) == pytest.approx(1.0)
    half = perm[labels].copy()
    half[::2] = perm[(labels[::2] + 1) % 10]  # every other example put in the next class's cluster
    assert metrics.matched_accuracy(half, labels) == pytest.approx(0.5)


def test_matched_accuracy_and_nmi_on_a_known_table():
    # clusters 0,0,1,1,1,2 vs classes 1,1,0,0,2,2: best map 0->1, 1->0, 2->2 gets 5 of 6
    pred, labels = np.array([0, 0, 1, 1, 1, 2]), np.array([1, 1, 0, 0, 2, 2])
    assert metrics.matched_accuracy(pred, labels) == pytest.approx(5 / 6)
    p = np.array([[2, 0, 0], [0, 2, 1], [0, 0, 1]]) / 6  # joint of (pred, label)
    pi, pj = p.sum(1), p.sum(0)
    mutual = sum(p[i, j] * math.log(p[i, j] / (pi[i] * pj[j])) for i in range(3) for j in range(3) if p[i, j])
    h = lambda q: -sum(x * math.log(x) for x in q if x)  # noqa: E731
    assert metrics.nmi(pred, labels) == pytest.approx(mutual / ((h(pi) + h(pj)) / 2))
    assert metrics.nmi(np.zeros(100, int), np.arange(100) % 10) == 0.0  # one cluster says nothing


# ---------------------------------------------------------------------------------------------- traversals


def test_traversal_rows_are_categories_and_columns_sweep_one_code():
    specs = [s.to_json() for s in latent.latent_specs(latent.InfoLatentConfig())]
    feeds, nrow = traversal_latent(specs, code=1, cols=5)
    assert nrow == 5 and feeds["categorical"].shape == (50, 1)
    assert feeds["categorical"][:, 0].tolist() == [r for r in range(10) for _ in range(5)]
    assert np.allclose(feeds["continuous"][:, 1], np.tile(np.linspace(-2, 2, 5), 10))
    assert (feeds["continuous"][:, 0] == feeds["continuous"][0, 0]).all()  # the other code held fixed
    assert (feeds["noise"] == feeds["noise"][0]).all()  # and the noise
    with pytest.raises(ExportError, match="--code 2 is out of range"):
        traversal_latent(specs, code=2)
    no_cont = [s for s in specs if s["name"] != "continuous"]
    with pytest.raises(ExportError, match="this model has none"):
        traversal_latent(no_cont, code=1)
    feeds, _ = traversal_latent(no_cont, cols=4)  # columns are then fresh noise draws
    assert len({tuple(v) for v in feeds["noise"][:4]}) == 4
    with pytest.raises(ExportError, match="no categorical or continuous code"):
        traversal_latent([{"name": "noise", "shape": [4], "dtype": "float32", "distribution": "normal"}])


def test_training_draws_a_traversal_per_continuous_code(run):
    names = sorted(p.name for p in (run / "samples").iterdir())
    assert "traverse-c0-step-0000004.png" in names and "traverse-c1-step-0000004.png" in names
    from PIL import Image

    w, h = Image.open(run / "samples" / "traverse-c0-step-0000004.png").size
    assert (w, h) == (2 + 10 * 30, 2 + 10 * 30)  # 10 categories x 10 values, 28 px + 2 px gutters


def test_traversal_images_sweep_the_span_asked_for(run):
    from gancore.runs import open_run

    state = open_run(run, device="cpu")
    held, cols = traversal_images(state, code=0, cols=4, span=(0.5, 0.5))  # the code held at 0.5 in every column
    rows = held.reshape(10, cols, -1)
    assert np.allclose(rows, rows[:, :1])
    swept, _ = traversal_images(state, code=0, cols=4)  # the default -2 .. 2 does move the images
    assert not np.allclose(swept.reshape(10, cols, -1), swept.reshape(10, cols, -1)[:, :1])
    assert np.allclose(swept[2::4], traversal_images(state, code=0, cols=4, span=(2 / 3, 2 / 3))[0][::4], atol=1e-5)


def test_sample_traverse_from_a_run_and_from_onnx(run, export, tmp_path):
    res = CliRunner().invoke(app, ["sample", str(run), "--traverse", "--code", "1", "-o", str(tmp_path / "t.png")])
    assert res.exit_code == 0, res.output
    assert "traversal; pytorch" in res.stdout and (tmp_path / "t.png").exists()
    res = CliRunner().invoke(app, ["sample", str(export / "generator.onnx"), "--traverse", "-o",
                                   str(tmp_path / "o.png")])
    assert res.exit_code == 0 and "onnxruntime" in res.stdout, res.output
    res = CliRunner().invoke(app, ["sample", str(run), "--code", "1"])
    assert res.exit_code == 2 and "add --traverse" in res.stderr
    res = CliRunner().invoke(app, ["sample", str(run), "--traverse", "-n", "3"])  # not silently ignored
    assert res.exit_code == 2 and "drop -n" in res.stderr


# ---------------------------------------------------------------------------------------------- eval and export


def test_eval_reports_code_accuracy(run, monkeypatch):
    from gancore.builtin.image_metrics import FashionQuality

    monkeypatch.setattr(FashionQuality, "samples", 300)
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: float(line.split()[1]) for line in res.stdout.splitlines()[2:]}
    assert 0.1 <= rows["infogan-codes/accuracy"] <= 1.0 and 0.0 <= rows["infogan-codes/nmi"] <= 1.0
    assert "fashion-quality/frechet" in rows


def test_generator_takes_named_code_inputs(export):
    model = OnnxModel(export / "generator.onnx")
    assert [i["name"] for i in model.inputs] == ["noise", "categorical", "continuous"]
    assert [i.type for i in model.session.get_inputs()] == ["tensor(float)", "tensor(int64)", "tensor(float)"]
    card = json.loads((export / "card.json").read_text())
    assert max(card["models"]["generator"]["onnx"]["max_abs_diff"].values()) <= 1e-4
    assert max(card["models"]["generator"]["pt2"]["max_abs_diff"].values()) <= 1e-4  # int64 codes in torch.export


@pytest.mark.parametrize("extra", [
    {"distribution": "normal", "dtype": "float32", "categories": [2, 2]},  # categories on a float input
    {"categories": None}, {"categories": [10, 11]}, {"categories": [10, 0]}, {"categories": [10]}])
def test_malformed_categories_metadata_is_refused(extra):
    from gancore.deploy import parse_metadata

    spec = {"name": "categorical", "shape": [2], "dtype": "int64", "distribution": "categorical", "classes": 10,
            **extra}
    with pytest.raises(ExportError, match="malformed input spec"):
        parse_metadata({"gancore.kind": '"generator"', "gancore.inputs": json.dumps([spec])})


def test_out_of_range_categories_are_refused(export):
    model = OnnxModel(export / "generator.onnx")
    feeds = model.draw(3)
    feeds["categorical"][1, 0] = 10
    with pytest.raises(ExportError, match=r"category 10 at index \[1, 0\], outside \[0, 10\)"):
        model.run(feeds)
    feeds["categorical"][1, 0] = -1
    with pytest.raises(ExportError, match="category -1"):
        model.run(feeds)
    feeds["categorical"][1, 0] = 0
    short = {**feeds, "noise": feeds["noise"][:2]}
    with pytest.raises(ExportError, match=r"share one batch size .*got categorical 3, continuous 3, noise 2"):
        model.run(short)
    feeds["categorical"] = feeds["categorical"].tolist()
    with pytest.raises(ExportError, match=r"'categorical' must be a numpy array, got list; wrap it with np\.asarray"):
        model.run(feeds)
    with pytest.raises(GanError, match="seed must be a whole number from 0"):
        model.sample(3, seed=-1)
    with pytest.raises(ExportError, match="n must be a whole number from 1 to 65536, got 0"):
        model.sample(0)


def test_fp16_export_of_the_code_inputs_keeps_parity(export):
    # the one-hot codes take the halved module's dtype, so they meet fp16 noise and weights in G's first layer
    g = json.loads((export / "card.json").read_text())["models"]["generator"]["onnx-fp16"]
    assert 0 < max(g["max_abs_diff"].values()) <= 2e-2
    model = OnnxModel(export / "generator.fp16.onnx")
    feeds = {"noise": np.zeros((3, 62), np.float32), "categorical": np.array([[0], [4], [9]], np.int64),
             "continuous": np.zeros((3, 2), np.float32)}
    out = model.run(feeds)[0]
    assert out.dtype == np.float32 and out.shape == (3, 1, 28, 28) and np.isfinite(out).all()
    with pytest.raises(ExportError, match="categorical"):
        model.run({**feeds, "categorical": np.array([[10], [0], [0]], np.int64)})


@pytest.mark.parametrize("sampler, outputs", [({"continuous": 0}, ["categorical_logits"]),
                                              ({"categorical": []}, ["continuous_mean"])])
def test_the_q_heads_note_names_only_the_outputs_it_has(sampler, outputs):
    from gancore_plugins.infogan import gan_export_extra

    state = prepare("infogan", TINY, {"sampler": sampler}, out="runs/q")
    q = gan_export_extra(state)["q_head"]
    assert q.outputs == outputs and q.metadata["note"].split(":")[0] == outputs[0] and ";" not in q.metadata["note"]


def test_q_head_is_exported_with_parity(export, run):
    from gancore.runs import open_run

    card = json.loads((export / "card.json").read_text())
    q = card["models"]["q_head"]
    assert q["kind"] == "q_head" and q["outputs"] == ["categorical_logits", "continuous_mean"]
    assert max(q["onnx"]["max_abs_diff"].values()) <= 1e-4 and max(q["pt2"]["max_abs_diff"].values()) <= 1e-4
    assert (export / "q_head.pt2").is_file()
    model = OnnxModel(export / "q_head.onnx", kind="q_head")
    x = np.random.default_rng(0).uniform(-1, 1, (7, 1, 28, 28)).astype(np.float32)
    logits, cont = model.run({"images": x})
    assert logits.shape == (7, 1, 10) and cont.shape == (7, 2)
    d = open_run(run, device="cpu").nets.discriminator.eval()
    with torch.no_grad():
        ref = nets.QModel(d)(torch.from_numpy(x))
    assert np.abs(ref[0].numpy() - logits).max() <= 1e-4 and np.abs(ref[1].numpy() - cont).max() <= 1e-4


def test_the_deployment_example_feeds_the_code_inputs_without_torch(export, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_deploy import GUARD

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", GUARD, str(root / "examples" / "deploy_onnx.py"),
                          str(export / "generator.onnx"), "3", str(tmp_path / "s.pgm")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "3 samples from infogan" in res.stdout


def test_bad_mutual_info_options():
    with pytest.raises(ValueError, match="lambda_aug must be >= 0"):
        mi.MutualInfoConfig(lambda_aug=-1)
    with pytest.raises(ValueError, match="aug_shift must be >= 1"):
        mi.MutualInfoConfig(aug_shift=0)


def test_lambda_aug_needs_images():
    reg = mi.MutualInfo(mi.MutualInfoConfig(lambda_aug=1.0))
    assert reg.check(None, {"shape": [1, 28, 28]}) is None  # type: ignore[arg-type]
    assert "lambda_aug=0" in reg.check(None, {"shape": [2]})  # type: ignore[arg-type]
    assert mi.MutualInfo(mi.MutualInfoConfig()).check(None, {"shape": [2]}) is None  # type: ignore[arg-type]


def test_infogan_codes_asked_of_an_export_says_to_give_the_run_folder(export):
    import gancore
    from gancore.errors import GanError

    with pytest.raises(GanError, match=r"metric 'infogan-codes' does not fit this exported model \(plugin 'infogan'"
                                       r".*it reads the run's other networks, so give gan eval the run folder"):
        gancore.evaluate_run(export / "generator.onnx", metrics=["infogan-codes"])
