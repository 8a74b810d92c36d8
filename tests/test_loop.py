"""The training loop: run folder, determinism, k D steps, exact resume."""

import json
import math
import shutil

import pytest
import torch

from gancore.checkpoint import list_checkpoints
from gancore.errors import ConfigError
from gancore.loop import lr_factor, prepare, prepare_resume, train
from tests.conftest import tiny


def losses(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_each_log_line_averages_every_step_since_the_last_whatever_the_checkpoints():
    def run(out, every):
        cfg = {"device": "cpu", "data": {"points": 512}, "regularizers": {"r1": {"every": 3}},
               "train": {"steps": 8, "batch_size": 64, "log_every": 4, "checkpoint_every": every, "sample_every": 8}}
        log = losses(train(prepare("gan2d", cfg, out=out), progress=False).run_dir)
        return [{k: v for k, v in line.items() if k not in ("images_per_s", "time_s")} for line in log
                if "d_adv" in line]

    plain = run("runs/plain", 8)
    assert [line["step"] for line in plain] == [4, 8] and all("d_r1" in line for line in plain)  # lazy R1 at 3, 6
    assert run("runs/checkpointed", 3) == plain  # checkpoints at 3 and 6 check the window, not clear it


def test_a_run_writes_config_log_samples_and_checkpoints():
    state = train(prepare("dcgan", tiny(), out="runs/a"), progress=False)
    run = state.run_dir
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["plugin"] == "dcgan" and cfg["generator"]["width"] == 8
    log = losses(run)
    assert [line["step"] for line in log] == [2, 4, 6]
    assert all({"d_adv", "g_adv", "images_per_s", "time_s"} <= set(line) for line in log)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000003.png", "step-0000006.png"]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-0000003", "step-0000006"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["latent"] == [{"name": "noise", "shape": [100], "dtype": "float32", "distribution": "normal"}]


def test_same_seed_same_losses_other_seed_other_losses():
    a = losses(train(prepare("dcgan", tiny(seed=1), out="runs/a"), progress=False).run_dir)
    b = losses(train(prepare("dcgan", tiny(seed=1), out="runs/b"), progress=False).run_dir)
    c = losses(train(prepare("dcgan", tiny(seed=2), out="runs/c"), progress=False).run_dir)
    key = [(x["d_adv"], x["g_adv"]) for x in a]
    assert key == [(x["d_adv"], x["g_adv"]) for x in b]
    assert key != [(x["d_adv"], x["g_adv"]) for x in c]


@pytest.mark.parametrize("k", [1, 3])
def test_k_discriminator_steps_per_generator_step(k):
    state = train(prepare("dcgan", tiny(train={"d_steps": k}), out=f"runs/k{k}"), progress=False)
    d_steps = {int(s["step"]) for s in state.opt_d.state_dict()["state"].values()}
    g_steps = {int(s["step"]) for s in state.opt_g.state_dict()["state"].values()}
    assert d_steps == {6 * k} and g_steps == {6}
    assert all(p.requires_grad for p in state.nets.discriminator.parameters())  # unfrozen after each G step


def test_the_generator_step_leaves_discriminator_weights_alone():
    state = prepare("dcgan", tiny(train={"steps": 1}), out="runs/g")
    before = {k: v.clone() for k, v in state.nets.discriminator.state_dict().items()}
    d_step = state.opt_d.step
    calls = []
    state.opt_d.step = lambda *a, **kw: (calls.append(1), d_step(*a, **kw))[1]
    train(state, progress=False)
    after = state.nets.discriminator.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(calls) == 1 and changed  # D moved by its own step only


def test_resume_reproduces_the_uninterrupted_run_exactly():
    full = losses(train(prepare("dcgan", tiny(train={"steps": 8, "checkpoint_every": 4}), out="runs/full"),
                        progress=False).run_dir)
    first = train(prepare("dcgan", tiny(train={"steps": 4, "checkpoint_every": 4}), out="runs/part"),
                  progress=False)
    resumed = prepare_resume(first.run_dir, steps=8)
    assert resumed.step == 4
    train(resumed, progress=False)
    assert losses(first.run_dir) == [{**x, "images_per_s": y["images_per_s"], "time_s": y["time_s"]}
                                     for x, y in zip(full, losses(first.run_dir), strict=True)]
    times = [x["time_s"] for x in losses(first.run_dir)]
    assert times == sorted(times) and times[2] > times[1]  # the resumed run's clock goes on from step 4's


def test_resume_with_evaluation_on_reproduces_the_uninterrupted_run_exactly(monkeypatch):
    from gancore import loop
    from gancore.components import Metric

    class LoadsOnce(Metric):  # as the shipped evaluator does: its first use in a process draws initial weights
        loaded = False

        def __call__(self, state):
            if not LoadsOnce.loaded:
                LoadsOnce.loaded = True
                torch.rand(100)
            return {"x": 1.0}

    monkeypatch.setattr(loop, "applicable", lambda state, names=None, skipped=None: {"once": LoadsOnce()})
    # consistency's random shifts draw from the global RNG: an evaluation must not move it
    over = {"train": {"steps": 8, "checkpoint_every": 4, "eval_every": 2},
            "regularizers": {"consistency": {"shift": 2}}}
    full = losses(train(prepare("dcgan", tiny(**over), out="runs/full"), progress=False).run_dir)
    LoadsOnce.loaded = False
    first = train(prepare("dcgan", tiny(**{**over, "train": {**over["train"], "steps": 4}}), out="runs/part"),
                  progress=False)
    LoadsOnce.loaded = False  # as in a new process
    train(prepare_resume(first.run_dir, steps=8), progress=False)
    assert [x["d_adv"] for x in losses(first.run_dir) if "d_adv" in x] == [x["d_adv"] for x in full if "d_adv" in x]
    assert sum("eval" in x for x in losses(first.run_dir)) == 4


def test_a_resume_after_images_were_removed_goes_on_with_a_fresh_pass_and_says_so(tmp_path, capsys):
    from tests.conftest import RED, paint

    paint(tmp_path / "imgs", {f"x{i}": RED for i in range(4)})  # 12 images
    cfg = tiny(data={"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
               train={"batch_size": 4, "steps": 4, "checkpoint_every": 2})
    first = train(prepare("dcgan", cfg, out="runs/shrunk"), progress=False)
    for f in sorted((tmp_path / "imgs").iterdir())[:5]:  # the saved epoch order still counts them
        f.unlink()
    resumed = prepare_resume(first.run_dir, steps=8)
    assert "the training data now holds 7 examples, 12 when step-0000004 was written; the run continues with a " \
           "fresh pass over the data as it is now, not bit-for-bit" in capsys.readouterr().err
    assert train(resumed, progress=False).step == 8


def test_a_resume_onto_data_whose_classes_or_vocabulary_changed_is_refused_and_moves_nothing(tmp_path):
    from gancore.errors import DataError
    from tests.conftest import paint_classes

    paint_classes(tmp_path / "imgs")  # classes blue, red: labels 0, 1
    cfg = tiny(data={"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
               train={"batch_size": 4, "steps": 4, "checkpoint_every": 2})
    run = train(prepare("dcgan", cfg, out="runs/classes"), progress=False).run_dir
    (tmp_path / "imgs" / "blue").rename(tmp_path / "imgs" / "teal")  # same images; red is label 0 now
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(DataError, match=r"the training data \(image-folder in .*imgs\) no longer matches the data "
                                         r"the run was trained on: its classes changed \(2 then, 2 now; gone: 'blue'; "
                                         r"new: 'teal'\)\. Put back the data .*classes was trained on"):
        prepare_resume(run, steps=6, checkpoint="2")  # an earlier checkpoint: later ones would be set aside
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    (tmp_path / "imgs" / "teal").rename(tmp_path / "imgs" / "blue")
    assert train(prepare_resume(run, steps=6), progress=False).step == 6

    text = tmp_path / "lines.txt"
    text.write_text("abc\nbca\ncab\nacb\n" * 8)
    cfg = {"device": "cpu", "data": {"name": "text", "path": str(text)}, "sampler": {"dim": 8},
           "generator": {"hidden": 16, "embed": 8}, "discriminator": {"embed": 8, "filters": 4},
           "loss": {"pretrain_steps": 1}, "train": {"steps": 2, "batch_size": 8, "checkpoint_every": 2}}
    run = train(prepare("gumbel-text", cfg, out="runs/vocab"), progress=False).run_dir
    text.write_text(text.read_text().replace("a", "z"))  # as many lines and tokens, each id another letter
    with pytest.raises(DataError, match=r"its vocabulary changed \(4 then, 4 now; gone: 'a'; new: 'z'\)"):
        prepare_resume(run, steps=4)


def test_the_same_classes_in_another_order_are_another_dataset():
    from gancore.errors import DataError
    from gancore.state import check_same_data

    was = {"kind": "image", "shape": [1, 8, 8], "classes": ["cat", "dog"]}
    check_same_data(was, {**was, "dataset": "another name"}, "data", "")  # only the facts ids depend on count
    with pytest.raises(DataError, match=r"data no longer matches .*: its shape is \[1, 16, 16\], \[1, 8, 8\] then; "
                                         r"its classes are the same names in another order, so every id would "
                                         r"change meaning\. Fix"):
        check_same_data(was, {**was, "classes": ["dog", "cat"], "shape": [1, 16, 16]}, "data", "Fix")


def test_loading_the_evaluator_leaves_the_global_rng_alone():
    from gancore.builtin.evaluator import load_evaluator

    load_evaluator.cache_clear()
    before = torch.random.get_rng_state()
    load_evaluator()
    assert torch.equal(torch.random.get_rng_state(), before)


def test_resume_drops_log_lines_written_after_the_checkpoint():
    state = train(prepare("dcgan", tiny(train={"steps": 4, "checkpoint_every": 2, "log_every": 1}), out="runs/r"),
                  progress=False)
    # Pretend the process died after logging step 4 but before its checkpoint landed.
    import shutil

    shutil.rmtree(state.run_dir / "checkpoints" / "step-0000004")
    resumed = prepare_resume(state.run_dir)
    assert resumed.step == 2
    assert [x["step"] for x in losses(state.run_dir)] == [1, 2]


def test_resuming_from_an_older_checkpoint_sets_the_later_ones_aside():
    state = train(prepare("dcgan", tiny(train={"steps": 6, "checkpoint_every": 2, "keep_checkpoints": 5}),
                          out="runs/old"), progress=False)
    resumed = prepare_resume(state.run_dir, checkpoint="2")
    assert resumed.step == 2
    root = state.run_dir / "checkpoints"
    assert [p.name for p in list_checkpoints(root)] == ["step-0000002"]
    aside = [p for p in root.iterdir() if p.name.startswith(".abandoned-")]
    assert len(aside) == 1 and sorted(p.name for p in aside[0].iterdir()) == ["samples", "step-0000004",
                                                                              "step-0000006"]
    # the abandoned future's pictures go with it, so the grids (and eval reports, and curves) read as one run
    assert sorted(p.name for p in (aside[0] / "samples").iterdir()) == ["step-0000003.png", "step-0000006.png"]
    assert not list((state.run_dir / "samples").iterdir())
    train(resumed, progress=False)
    assert sorted(p.name for p in (state.run_dir / "samples").iterdir()) == ["step-0000003.png", "step-0000006.png"]
    assert [p.name for p in list_checkpoints(root)] == ["step-0000002", "step-0000004", "step-0000006"]


def test_a_refused_resume_from_an_older_checkpoint_moves_nothing():
    state = train(prepare("dcgan", tiny(train={"steps": 4, "checkpoint_every": 2}), out="runs/keep"),
                  progress=False)
    root = state.run_dir / "checkpoints"
    with pytest.raises(ConfigError, match=r"already reached step 2 of 2.*--steps"):
        prepare_resume(state.run_dir, checkpoint="2", steps=2)
    assert [p.name for p in list_checkpoints(root)] == ["step-0000002", "step-0000004"]
    assert not [p for p in root.iterdir() if p.name.startswith(".abandoned-")]


def test_the_loop_calls_the_phase_hooks(monkeypatch):
    from gancore.plugins import build_manager, hookimpl

    seen = []

    class Spy:
        @hookimpl
        def gan_train_start(self, state):
            seen.append(("start", state.step))

        @hookimpl
        def gan_train_log(self, state, metrics):
            seen.append(("log", metrics["step"]))

        @hookimpl
        def gan_train_checkpoint(self, state, path):
            seen.append(("ckpt", path.name))

        @hookimpl
        def gan_train_end(self, state):
            seen.append(("end", state.step))

    mgr = build_manager(extra=[("spy", Spy())])
    train(prepare("dcgan", tiny(), out="runs/h", mgr=mgr), progress=False)
    assert seen == [("start", 0), ("log", 2), ("ckpt", "step-0000003"), ("log", 4), ("log", 6),
                    ("ckpt", "step-0000006"), ("end", 6)]


def test_bf16_autocast_trains_with_fp32_weights():
    import torch

    state = train(prepare("dcgan", tiny(train={"autocast": "bf16"}), out="runs/bf16"), progress=False)
    log = [json.loads(x) for x in (state.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x["d_adv"]) and math.isfinite(x["g_adv"]) for x in log)
    assert all(p.dtype == torch.float32 for p in state.nets.generator.parameters())


@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile on CPU needs a C compiler")
def test_a_compiled_run_checkpoints_plain_weights_and_resumes_eagerly():
    from safetensors import safe_open

    from gancore.checkpoint import list_checkpoints

    state = train(prepare("dcgan", tiny(train={"compile": True, "steps": 3}), out="runs/compiled"), progress=False)
    ckpt = list_checkpoints(state.run_dir / "checkpoints")[-1]
    with safe_open(str(ckpt / "weights.safetensors"), "pt") as f:
        assert not any("_orig_mod" in k for k in f.keys())  # noqa: SIM118 (not a dict): keys as in an eager run
    cfg = json.loads((state.run_dir / "config.json").read_text())
    cfg["train"]["compile"] = False
    (state.run_dir / "config.json").write_text(json.dumps(cfg))
    resumed = prepare_resume(state.run_dir, steps=5)
    assert resumed.step == 3
    train(resumed, progress=False)


@pytest.mark.parametrize(("kind", "start", "want"), [
    ("none", 0.0, [1, 1, 1, 1, 1]),
    ("linear", 0.0, [1, 0.75, 0.5, 0.25, 0]),
    ("linear", 0.5, [1, 1, 1, 0.5, 0]),
    ("cosine", 0.0, [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0]),
])
def test_lr_factor_holds_then_decays_to_zero_at_the_last_step(kind, start, want):
    assert [lr_factor(s, 8, kind, start) for s in (0, 2, 4, 6, 8)] == pytest.approx(want)


def test_lr_decay_sets_both_rates_each_step_and_resume_continues_the_schedule():
    seen = []
    state = prepare("dcgan", tiny(train={"lr_decay": "linear", "lr_decay_start": 0.5, "lr_d": 1e-4}), out="runs/lr")
    g_step = state.opt_g.step
    state.opt_g.step = lambda *a, **kw: (seen.append((state.opt_g.param_groups[0]["lr"],
                                                       state.opt_d.param_groups[0]["lr"])), g_step(*a, **kw))[1]
    train(state, progress=False)
    # 6 steps, held for 3, then 1 - (step - 3) / 3 of 2e-4 (G) and 1e-4 (D)
    want = [1, 1, 1, 1, 2 / 3, 1 / 3]
    assert [g for g, _ in seen] == pytest.approx([2e-4 * f for f in want])
    assert [d for _, d in seen] == pytest.approx([1e-4 * f for f in want])
    resumed = prepare_resume(state.run_dir, steps=9, checkpoint="step-0000003")
    train(resumed, progress=False)
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - (8 - 4.5) / 4.5))


def test_a_plugin_whose_pictures_meet_a_full_disk_gets_the_disk_message_not_the_blame():
    import errno

    from gancore.errors import GanError, PluginError
    from gancore.plugins import hookimpl

    class Pictures:
        def __init__(self, error):
            self.error = error

        @hookimpl
        def gan_train_pictures(self, state, folder):
            raise self.error

    for error, message in ((OSError(errno.ENOSPC, "No space left on device"),
                            r"^could not write a sample grid in .*: No space left on device; the last checkpoint is "
                            r"intact. Free disk space, then --resume"),
                           (ValueError("a bug"), r"^plugin 'pictures' failed in gan_train_pictures \(test_loop.py")):
        state = prepare("gan2d", {"device": "cpu", "data": {"points": 64}, "train": {"steps": 2, "batch_size": 8}},
                        out=f"runs/{type(error).__name__}")
        state.manager.add(Pictures(error), "pictures")
        with pytest.raises(GanError, match=message) as raised:
            train(state, progress=False)
        assert isinstance(raised.value, PluginError) == isinstance(error, ValueError)
        state.manager.pm.unregister(name="pictures")
