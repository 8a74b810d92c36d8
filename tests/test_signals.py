"""SIGTERM and SIGHUP during training: the step is checkpointed, training stops, and the resume is exact."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import gancore.loop
from gancore.checkpoint import list_checkpoints
from gancore.loop import prepare, prepare_resume, train
from gancore.plugins import build_manager, hookimpl
from gancore.signals import Stopped, stop_on_signals
from tests.conftest import tiny

OVER = {"train": {"steps": 8, "checkpoint_every": 50, "log_every": 1}}


def signal_at(state, g_step: int, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to this process from inside the ``g_step``-th generator update."""
    real, calls = state.opt_g.step, []

    def step(*a, **kw):
        calls.append(1)
        if len(calls) == g_step:
            os.kill(os.getpid(), signum)
        return real(*a, **kw)

    state.opt_g.step = step


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_checkpoints_the_step_it_is_on_and_the_resume_is_exact(signum):
    full = train(prepare("dcgan", tiny(**OVER), out="runs/full"), progress=False)
    state = prepare("dcgan", tiny(**OVER), out="runs/cut")
    signal_at(state, 3, signum)
    with pytest.raises(Stopped) as e, stop_on_signals(state):
        train(state, progress=False)
    assert (e.value.signum, e.value.step) == (signum, 3) and state.step == 3
    assert str(e.value) == f"stopped by {signal.Signals(signum).name} at step 3; wrote its checkpoint, step-0000003"
    assert [c.name for c in list_checkpoints(state.run_dir / "checkpoints")] == ["step-0000003"]  # off schedule
    resumed = train(prepare_resume(state.run_dir), progress=False)
    assert resumed.step == 8
    for name, net in full.nets.named().items():
        got = resumed.nets.named()[name].state_dict()
        assert all(torch.equal(v, got[k]) for k, v in net.state_dict().items()), name


def same_weights(a, b) -> bool:
    return all(torch.equal(v, b.nets.named()[name].state_dict()[k])
               for name, net in a.nets.named().items() for k, v in net.state_dict().items())


def test_the_stop_checkpoint_comes_before_the_steps_grid_and_evaluation(monkeypatch):
    evaluated: list[int] = []

    def evaluate(state, metrics, failed):
        evaluated.append(state.step)  # a slow evaluation could outlast a scheduler's grace period
        return {}

    monkeypatch.setattr(gancore.loop, "evaluate", evaluate)
    due = {"train": {**OVER["train"], "sample_every": 3, "eval_every": 3}}
    full = train(prepare("dcgan", tiny(**due), out="runs/full"), progress=False)
    assert evaluated == [3, 6, 8]
    evaluated.clear()
    state = prepare("dcgan", tiny(**due), out="runs/cut")
    signal_at(state, 3)
    with pytest.raises(Stopped), stop_on_signals(state):
        train(state, progress=False)
    assert evaluated == [] and not (state.run_dir / "samples" / "step-0000003.png").exists()
    assert [c.name for c in list_checkpoints(state.run_dir / "checkpoints")] == ["step-0000003"]
    assert same_weights(full, train(prepare_resume(state.run_dir), progress=False))


def test_a_plugins_pictures_drawn_from_the_global_rng_do_not_change_the_training():
    class Noisy:
        @hookimpl
        def gan_train_pictures(self, state, folder):
            torch.rand(1000)  # a third party's picture that draws noise as training does
            return None

    # ssgan: its D's dropout and input noise draw from the global RNG in training
    cfg = {"device": "cpu", "data": {"limit": 256, "labels_per_class": 2}, "generator": {"hidden": 32},
           "discriminator": {"hidden": [32, 16]}, "train": {"steps": 4, "batch_size": 10, "sample_every": 1}}
    plain = train(prepare("ssgan", cfg, out="runs/plain"), progress=False)
    noisy = train(prepare("ssgan", cfg, out="runs/noisy", mgr=build_manager(extra=[("noisy", Noisy())])),
                  progress=False)
    assert same_weights(plain, noisy)


def test_a_stopped_state_trains_on_when_called_again():
    state = prepare("dcgan", tiny(**OVER), out="runs/again")
    signal_at(state, 3)
    with pytest.raises(Stopped), stop_on_signals(state):
        train(state, progress=False)
    assert state.stop_signal is None  # the stop was asked once
    train(state, progress=False)
    assert state.step == 8


def test_a_signal_at_the_last_step_lets_the_run_finish():
    state = prepare("dcgan", tiny(**OVER), out="runs/end")
    signal_at(state, 8)
    with stop_on_signals(state):
        train(state, progress=False)  # no Stopped: the run is complete
    assert state.step == 8 and state.stop_signal == signal.SIGTERM


def test_a_second_signal_acts_as_it_would_have():
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        state = prepare("dcgan", tiny(), out="runs/h")
        with stop_on_signals(state):
            os.kill(os.getpid(), signal.SIGTERM)
            assert state.stop_signal == signal.SIGTERM and seen == []
            os.kill(os.getpid(), signal.SIGTERM)  # the user means it: straight to the handler in place before
            assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_after_a_sighup_more_sighups_are_ignored_and_sigterm_acts_as_before():
    seen: list[int] = []

    def mine(signum, frame):
        seen.append(signum)

    before = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        state = prepare("dcgan", tiny(), out="runs/hup")
        with stop_on_signals(state):
            os.kill(os.getpid(), signal.SIGHUP)  # a closed terminal: the kernel's hang-up, then the shell's
            os.kill(os.getpid(), signal.SIGHUP)
            assert state.stop_signal == signal.SIGHUP and seen == []
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGHUP) is mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_the_handlers_in_place_before_come_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    state = prepare("dcgan", tiny(), out="runs/b")
    with stop_on_signals(state):
        assert all(signal.getsignal(s) != h for s, h in before.items())
    assert {s: signal.getsignal(s) for s in before} == before and state.stop_signal is None


def test_an_ignored_signal_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        state = prepare("dcgan", tiny(), out="runs/i")
        with stop_on_signals(state):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert state.stop_signal is None
    finally:
        signal.signal(signal.SIGHUP, before)
