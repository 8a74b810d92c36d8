"""gumbel-text: the grammar and its parser, the datasets, the Gumbel-softmax relaxation and its temperature
schedule, the generator's three paths agreeing, the text metrics, sampling as text and export parity."""

import itertools
import json
import math
import random
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gancore.deploy import OnnxModel
from gancore.errors import DataError, ExportError, GanError
from gancore.export import export_run
from gancore.loop import prepare, train
from gancore.sampling import decode_tokens, sample
from gancore_plugins.gumbel_text import data, grammar, metrics, nets

TINY = {"device": "cpu", "data": {"name": "cfg", "size": 256, "max_len": 7},
        "sampler": {"dim": 8}, "generator": {"hidden": 16, "embed": 8},
        "discriminator": {"embed": 8, "filters": 4},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "sample_every": 2, "checkpoint_every": 2,
                  "sample_count": 4}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    state = prepare("gumbel-text", TINY, out=str(tmp_path_factory.mktemp("runs") / "gt-tiny"))
    train(state, progress=False)
    return state


# ---------------------------------------------------------------------------------------------- grammar


@cache
def _derivable(s: str) -> bool:
    """S -> S+S | S-S | S*S | S/S | (S) | x | y, read literally: an independent recogniser by splitting."""
    if s in ("x", "y"):
        return True
    if len(s) >= 3 and s[0] == "(" and s[-1] == ")" and _derivable(s[1:-1]):
        return True
    return any(s[i] in "+-*/" and _derivable(s[:i]) and _derivable(s[i + 1:]) for i in range(1, len(s) - 1))


def test_parser_agrees_with_the_grammar_on_every_short_string():
    for n in range(0, 6):
        for chars in itertools.product(grammar.SYMBOLS, repeat=n):
            s = "".join(chars)
            assert grammar.is_valid(s) == _derivable(s), s


@given(st.text(alphabet="xy+-*/()", max_size=11))
@settings(max_examples=300, deadline=None)
def test_parser_agrees_with_the_grammar_on_random_strings(s):
    assert grammar.is_valid(s) == _derivable(s)


def test_parse_tree_prints_back_and_errors_say_where():
    for s in ("x", "(x+y)*y", "x-y/(x)"):
        assert str(grammar.parse(s)) == s
    assert grammar.parse("x+y*x").op == "*"  # left-associative, no precedence: the language is all that counts
    with pytest.raises(grammar.ParseError, match="position 2"):
        grammar.parse("x+")


def test_sampled_derivations_are_valid_bounded_and_varied():
    rng = random.Random(0)
    xs = [grammar.sample(rng, 9) for _ in range(2000)]
    assert all(grammar.is_valid(s) and len(s) <= 9 for s in xs)
    assert len(set(xs)) > 1000 and any("(" in s for s in xs)


# ---------------------------------------------------------------------------------------------- data


def test_cfg_dataset_pads_with_the_end_token_and_holds_out_a_different_stream():
    cfg = data.GrammarConfig(size=300, max_len=9)
    tr, ho = data.cfg_dataset(cfg, train=True), data.cfg_dataset(cfg, train=False)
    assert tr.x.shape == (300, 10) and ho.x.shape == (30, 10) and tr.x.dtype == torch.int64
    assert tr.vocab[0] == data.EOS and tr.kind == "sequence" and (tr.x[:, -1] == 0).all()
    strings = decode_tokens(tr.x.numpy(), tr.vocab)
    assert all(grammar.is_valid(s) for s in strings)
    assert data.cfg_dataset(cfg, train=True).x.equal(tr.x)  # seeded
    assert decode_tokens(ho.x.numpy(), ho.vocab) != strings[:30]


def test_words_are_split_without_overlap(tmp_path):
    (tmp_path / "american-english").write_text("apple\nBob\nbob's\nbanana\ncherry\ndate\nfig\nkiwi\nlime\nmango\n")
    cfg = data.WordsConfig(max_len=5, held_out=0.25)
    tr = decode_tokens(data.words_dataset(cfg, root=str(tmp_path), train=True).x.numpy(), data.words_dataset(
        cfg, root=str(tmp_path), train=True).vocab)
    ho = decode_tokens(data.words_dataset(cfg, root=str(tmp_path), train=False).x.numpy(),
                       [data.EOS, *"abcdefghijklmnopqrstuvwxyz"])
    assert sorted(tr + ho) == ["apple", "date", "fig", "kiwi", "lime", "mango"]  # no names, possessives, > 5
    assert not set(tr) & set(ho) and len(ho) == 2


def test_words_without_the_word_list_say_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="wamerican"):
        data.words_dataset(data.WordsConfig(), root=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("level", ["char", "word"])
def test_text_file_at_either_level(tmp_path, level):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(f"the {a} sat on the {b}" for a in ("cat", "dog", "cow") for b in ("mat", "rug")) + "\n\n")
    cfg = data.TextConfig(path=str(f), level=level, held_out=0.2)
    d = data.text_dataset(cfg, train=True)
    got = decode_tokens(d.x.numpy(), d.vocab, level)
    assert all(s.startswith("the ") for s in got) and len(got) == 5
    assert ("cat" in d.vocab) == (level == "word") and d.info["level"] == level


def test_a_text_file_is_cut_only_at_line_ends(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_bytes("ab\x0ccd\r\nx\u2028y\rlast\n".encode())  # a form feed and U+2028 inside lines; CRLF, CR
    d = data.text_dataset(data.TextConfig(path=str(f), held_out=0.2), train=True)
    got = decode_tokens(d.x.numpy(), d.vocab, "char")
    assert got and set(got) <= {"ab cd", "x y", "last"}  # each line whole (the held-out one aside)
    assert d.info["max_len"] == 5  # "ab cd": the form feed is whitespace inside the line, not a line end


def test_text_file_errors(tmp_path):
    with pytest.raises(DataError, match="text:PATH"):
        data.text_dataset(data.TextConfig())
    with pytest.raises(DataError, match="does not exist"):
        data.text_dataset(data.TextConfig(path=str(tmp_path / "missing.txt")))


def test_dataset_text_colon_path_trains(tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("\n".join(["abab", "baba", "abba", "baab", "aabb", "bbaa", "abab"] * 4))
    state = prepare("gumbel-text", {**TINY, "data": {"name": f"text:{f}"}}, out=str(tmp_path / "r"))
    assert state.config["data"]["name"] == "text" and state.config["data"]["path"] == str(f)
    assert state.data_info["vocab"] == [data.EOS, "a", "b"]
    train(state, progress=False)


# ---------------------------------------------------------------------------------------------- Gumbel-softmax


def test_gumbel_noise_from_uniform_is_finite_and_has_the_gumbel_mean():
    u = torch.tensor([0.0, 1e-12, 0.5, 1 - 1e-7])
    assert torch.isfinite(nets.gumbel_from_uniform(u)).all()
    g = nets.gumbel_from_uniform(torch.rand(200000, generator=torch.Generator().manual_seed(0)))
    assert g.mean().item() == pytest.approx(0.5772, abs=0.01)  # Euler-Mascheroni
    assert g.var().item() == pytest.approx(math.pi ** 2 / 6, rel=0.03)


def test_gumbel_max_draws_from_the_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    u = torch.rand(100000, 4, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount((logits + nets.gumbel_from_uniform(u)).argmax(-1), minlength=4).float() / 100000
    assert torch.allclose(counts, torch.softmax(logits, 0), atol=0.01)


def test_relaxation_is_a_distribution_that_hardens_as_temperature_falls():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))
    g = nets.gumbel_from_uniform(torch.rand(5, 7, generator=torch.Generator().manual_seed(3)))
    warm, cold = nets.gumbel_softmax(logits, g, 5.0), nets.gumbel_softmax(logits, g, 0.01)
    assert torch.allclose(warm.sum(-1), torch.ones(5)) and torch.allclose(cold.sum(-1), torch.ones(5))
    hard = nets.one_hot((logits + g).argmax(-1), 7)
    assert (cold - hard).abs().max() < 1e-3 < (warm - hard).abs().max()
    assert warm.max(-1).values.mean() < cold.max(-1).values.mean()


def test_straight_through_is_hard_forward_and_soft_backward():
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(4), requires_grad=True)
    g = torch.zeros(3, 5)
    w = torch.randn(3, 5, generator=torch.Generator().manual_seed(5))
    hard = nets.gumbel_softmax(logits, g, 0.5, hard=True)
    assert torch.equal(hard, nets.one_hot(logits.argmax(-1), 5))
    (hard * w).sum().backward()
    st_grad = logits.grad.clone()
    logits.grad = None
    (nets.gumbel_softmax(logits, g, 0.5) * w).sum().backward()
    assert torch.allclose(st_grad, logits.grad) and st_grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- temperature


def test_temperature_schedules():
    exp = nets.GeneratorConfig(temperature=1.0, temperature_min=0.01)
    assert nets.temperature_at(exp, 0, 100) == pytest.approx(1.0)
    assert nets.temperature_at(exp, 50, 100) == pytest.approx(0.1)  # geometric: halfway in log space
    assert nets.temperature_at(exp, 100, 100) == pytest.approx(0.01)
    lin = nets.GeneratorConfig(temperature=2.0, temperature_min=0.5, schedule="linear", anneal_steps=10)
    assert nets.temperature_at(lin, 5, 1000) == pytest.approx(1.25)
    assert nets.temperature_at(lin, 500, 1000) == pytest.approx(0.5)  # held at the minimum after anneal_steps
    const = nets.GeneratorConfig(temperature=0.7, schedule="constant")
    assert nets.temperature_at(const, 99, 100) == 0.7
    with pytest.raises(ValueError, match="temperature_min"):
        nets.GeneratorConfig(temperature=0.5, temperature_min=1.0)


def test_the_loop_anneals_the_generators_temperature(run):
    cfg = nets.GeneratorConfig(**{k: v for k, v in run.config["generator"].items() if k != "name"})
    # schedule() runs before each step, so after 4 steps G holds step 3's temperature
    assert run.nets.generator.temperature == pytest.approx(nets.temperature_at(cfg, 3, 4))
    assert run.nets.generator.temperature < cfg.temperature


# ---------------------------------------------------------------------------------------------- generator


def test_decode_teacher_forcing_and_cold_relaxation_agree(run):
    g = run.nets.generator
    latent = run.sampler.sample(6, torch.Generator().manual_seed(7), run.device)
    g.eval()
    with torch.no_grad():
        ids, logits = g.decode(**latent)
        tf = g.teacher_forced(ids, latent["noise"])  # the same tokens fed back: the same logits
        g.temperature = 1e-4
        soft, soft_logits = g.run(**latent)
    assert torch.allclose(tf, logits, atol=1e-5)
    assert torch.equal(soft.argmax(-1), ids) and torch.allclose(soft_logits, logits, atol=1e-4)
    assert torch.equal(g(**latent).argmax(-1), ids)  # eval-mode forward: hard one-hots


def test_discriminator_reads_ids_and_one_hots_alike(run):
    d = run.nets.discriminator.eval()
    ids = run.data.x[:5]
    with torch.no_grad():
        assert torch.allclose(d(ids).logits, d(nets.one_hot(ids, len(run.data_info["vocab"]))).logits)


def test_samplers_inputs_follow_the_data(run):
    specs = {s.name: s for s in run.latent_specs}
    assert specs["gumbel"].shape == (8, 9) and specs["gumbel"].low == 0.0 and specs["noise"].shape == (8,)


def test_image_data_is_refused_with_a_clear_message():
    with pytest.raises(GanError, match="sequence"):
        prepare("gumbel-text", {**TINY, "data": {"name": "fashion-mnist", "limit": 64}})


@pytest.mark.parametrize("progress", [True, False])
def test_pre_training_shows_progress_unless_quiet(tmp_path, capsys, progress):
    cfg = {**TINY, "loss": {"name": "gumbel-text", "pretrain_steps": 4}, "train": {**TINY["train"], "steps": 1}}
    train(prepare("gumbel-text", cfg, out=str(tmp_path / "r")), progress=progress)
    shown = "MLE pre-training step 4/4" in capsys.readouterr().err
    assert shown == progress


def test_training_writes_text_samples(run):
    files = sorted((run.run_dir / "samples").glob("step-*.txt"))
    assert [f.name for f in files] == ["step-0000002.txt", "step-0000004.txt"]
    assert len(files[-1].read_text().splitlines()) == 4


# ---------------------------------------------------------------------------------------------- metrics


def test_bleu_and_self_bleu_on_known_sets():
    refs = [list("x+y*x"), list("y-(x)")]
    assert metrics.bleu([list("x+y*x")], refs) == pytest.approx(1.0)
    assert metrics.bleu([list("((((")], refs) < 0.2
    same = [list("x*y")] * 4
    assert metrics.self_bleu(same) == pytest.approx(1.0)
    assert metrics.self_bleu([list("x+y"), list("(/)")]) < 0.2
    short = metrics.bleu([list("x")], [list("x+y+x")])  # brevity penalty: exp(1 - 5/1)
    assert short == pytest.approx(math.exp(-4))


def test_text_scores_count_valid_unique_and_novel():
    got = metrics.text_scores(["x+y", "x+y", "x+", "(y)"], train={"x+y"}, held_out=["y*x", "(x)"],
                              level="char", check="cfg")
    assert got["validity"] == 0.75 and got["uniqueness"] == 0.75 and got["novelty"] == 0.5
    words = metrics.text_scores(["cat", "dgo"], train=set(), held_out=["cat"], level="char", check="words",
                                dictionary={"cat", "dog"})
    assert words["validity"] == 0.5


def test_text_quality_metric_on_a_run(run, monkeypatch):
    monkeypatch.setattr(metrics.TextQuality, "n", 200)
    m = metrics.TextQuality()
    assert m.applies(run)
    got = m(run)
    assert 0 <= got["validity"] <= 1 and got["validity_ceiling"] == 1.0
    assert {"uniqueness", "novelty", "bleu4", "self_bleu4"} <= set(got)


# ---------------------------------------------------------------------------------------------- sampling, export


def test_sample_prints_text_from_a_run_and_from_onnx(run, tmp_path):
    res = sample(run.run_dir, n=5)
    assert len(res.texts) == 5 and all(set(t) <= set(grammar.SYMBOLS) for t in res.texts)
    dest = export_run(run.run_dir, ["onnx"], out=tmp_path / "exp")
    res2 = sample(dest / "generator.onnx", n=5, out=tmp_path / "s.txt")
    assert (tmp_path / "s.txt").read_text().splitlines() == res2.texts
    config = run.run_dir / "config.json"
    before = config.read_bytes()
    (tmp_path / "g.pt2").write_bytes(b"an exported model")
    for name in (config, tmp_path / "g.png", tmp_path / "g.pt2"):  # run files, pictures, models: not text files
        with pytest.raises(ExportError, match=r"this model writes text; give -o a text file"):
            sample(run.run_dir, n=5, out=name)
    assert config.read_bytes() == before and not (tmp_path / "g.png").exists()
    assert (tmp_path / "g.pt2").read_bytes() == b"an exported model"
    (tmp_path / "corpus.txt").write_text("the user's own words\n")  # e.g. the file it trained on, --dataset text:
    with pytest.raises(ExportError, match=r"corpus.txt' already exists, so it is not overwritten; choose another "
                                          r"name, or replace it with --force"):
        sample(run.run_dir, n=5, out=tmp_path / "corpus.txt")
    assert (tmp_path / "corpus.txt").read_text() == "the user's own words\n"
    sample(run.run_dir, n=3, out=tmp_path / "corpus.txt", force=True)  # a rerun into the same file, said so
    assert len((tmp_path / "corpus.txt").read_text().splitlines()) == 3
    with pytest.raises(ExportError, match=r"is a folder; give a file name for the samples"):
        sample(run.run_dir, n=3, out=tmp_path, force=True)
    (tmp_path / "empty.txt").touch()  # `mktemp` or an editor's new file: nothing to lose
    sample(run.run_dir, n=2, out=tmp_path / "empty.txt")
    assert len((tmp_path / "empty.txt").read_text().splitlines()) == 2
    sample(run.run_dir, n=2, out=tmp_path / "new" / "folder" / "s.txt")  # its folders made, as a grid's are
    assert len((tmp_path / "new" / "folder" / "s.txt").read_text().splitlines()) == 2


def test_exported_gumbel_noise_outside_its_range_or_not_finite_is_refused(run, tmp_path):
    model = OnnxModel(export_run(run.run_dir, ["onnx"], out=tmp_path / "exp") / "generator.onnx")
    spec = next(s for s in model.inputs if s["name"] == "gumbel")
    assert spec["bounded"] is True and (spec["low"], spec["high"]) == (0.0, 1.0)
    feeds = model.draw(3, seed=1)
    model.run(feeds)
    for value, why in ((-0.5, r"holds -0.5 at index \[1, 0, 0\], outside \[0.0, 1.0\]"),
                       (2.0, r"holds 2.0 at index \[1, 0, 0\], outside"),
                       (np.nan, r"holds nan at index \[1, 0, 0\]; latent values must be finite")):
        bad = {**feeds, "gumbel": feeds["gumbel"].copy()}
        bad["gumbel"][1, 0, 0] = value
        with pytest.raises(ExportError, match=rf"input 'gumbel' {why}"):
            model.run(bad)
    with pytest.raises(ExportError, match="holds a batch of 0; give at least one example"):
        model.run({k: v[:0] for k, v in feeds.items()})  # its graph failed deep inside onnxruntime on 0


def test_export_ids_match_pytorch_exactly_and_decode_from_metadata_alone(run, tmp_path):
    import onnxruntime as ort

    dest = export_run(run.run_dir, ["onnx", "pt2"], out=tmp_path / "exp")
    card = json.loads((dest / "card.json").read_text())["models"]["generator"]
    assert card["outputs"] == ["ids", "logits"] and card["onnx"]["max_abs_diff"]["5"] <= 1e-4
    assert card["pt2"]["max_abs_diff"]["5"] <= 1e-4  # token ids compared exactly (inf on any mismatch)
    sess = ort.InferenceSession(str(dest / "generator.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    vocab = json.loads(meta["gancore.vocab"])  # a deployer's view: onnxruntime and JSON, no gancore
    assert [i.name for i in sess.get_inputs()] == ["noise", "gumbel"]
    rng = np.random.default_rng(0)
    feeds = {"noise": rng.standard_normal((64, 8), dtype=np.float32),
             "gumbel": rng.uniform(0, 1, (64, 8, 9)).astype(np.float32)}
    ids, logits = sess.run(None, feeds)
    assert ids.dtype == np.int64 and logits.shape == (64, 8, 9)
    with torch.no_grad():
        ref_ids, ref_logits = nets.TextExport(run.nets.generator.eval())(
            *(torch.from_numpy(v) for v in feeds.values()))
    assert np.array_equal(ids, ref_ids.numpy())
    assert np.abs(logits - ref_logits.numpy()).max() < 1e-4
    texts = ["".join(vocab[i] for i in row[: list(row).index(0) if 0 in row else len(row)]) for row in ids.tolist()]
    assert texts == decode_tokens(ids, vocab)
    assert OnnxModel(dest / "generator.onnx").meta["output"]["layout"] == "tokens"


def test_deploy_example_decodes_with_onnxruntime_alone(run, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    dest = export_run(run.run_dir, ["onnx"], out=tmp_path / "exp")
    script = Path(__file__).resolve().parents[2] / "examples" / "deploy_text_onnx.py"
    out = subprocess.run([sys.executable, str(script), str(dest / "generator.onnx"), "6"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    model = OnnxModel(dest / "generator.onnx")
    rng = np.random.default_rng(0)
    ids = model.run({"noise": rng.standard_normal((6, 8), dtype=np.float32),
                     "gumbel": rng.random((6, 8, 9), dtype=np.float32)})[0]
    assert out == decode_tokens(ids, model.meta["vocab"])


def test_a_text_file_that_is_not_utf8_is_refused_not_trained_on_replacement_marks(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes(b"tea\ncaf\xe9 au lait\n" * 3)
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte 0xe9 on line 2\); re-encode it, e\.g\. iconv"):
        data.text_dataset(data.TextConfig(path=str(f)))


def test_one_outlier_line_does_not_silently_set_every_sequences_length(tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("\n".join(["abab", "baba", "abba"] * 40 + ["a" * 20000]))
    with pytest.raises(DataError, match=r"longest line \(non-empty line 121\) has 20000 characters.*"
                                        r"--set data\.max_len=N to drop longer lines \(N=4 keeps 99% of them\)"):
        data.text_dataset(data.TextConfig(path=str(f)))
    d = data.text_dataset(data.TextConfig(path=str(f), max_len=4))  # the way out the message names
    assert d.x.shape[1] == 5  # 4 tokens and the end token


def test_long_lines_get_a_max_len_hint_that_keeps_what_it_says(tmp_path):
    f = tmp_path / "long.txt"
    f.write_text("\n".join(["ab" * 150] * 10))  # every line past the 256 the default allows
    with pytest.raises(DataError, match=r"N=300 keeps 99% of them; past 256 every step is slow"):
        data.text_dataset(data.TextConfig(path=str(f)))
    assert len(data.text_dataset(data.TextConfig(path=str(f), max_len=300))) > 0


def test_a_utf8_byte_order_mark_is_not_a_token(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_text("abc\nabd\nabe\nabf\n", encoding="utf-8-sig")  # as Windows editors save
    vocab = data.text_dataset(data.TextConfig(path=str(f))).vocab
    assert "\ufeff" not in vocab and {"a", "b"} <= set(vocab)


def test_the_end_token_as_a_word_of_the_corpus_is_refused(tmp_path):
    f = tmp_path / "eos.txt"
    f.write_text("a b\na <eos> b\nc d\n")
    with pytest.raises(DataError, match=r"uses the word <eos> \(non-empty line 2\), the end token gancore adds"):
        data.text_dataset(data.TextConfig(path=str(f), level="word"))
    assert len(data.text_dataset(data.TextConfig(path=str(f)))) > 0  # characters: < e o s > are letters like any
