"""SIGTERM and SIGHUP during training: the step is checkpointed, training stops, and the resume is exact."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from gancore.checkpoint import list_checkpoints
from gancore.loop import prepare, prepare_resume, train
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
