"""A polite stop: SIGTERM or SIGHUP during training finishes the step, checkpoints it, and stops.

Schedulers send SIGTERM before they kill a job (SLURM at its time limit or on pre-emption, Kubernetes when it
evicts a pod, ``systemctl stop``), and a closed terminal sends SIGHUP. Without a handler the process dies between
checkpoints and loses every step since the last one; with :func:`stop_on_signals` around
:func:`gancore.loop.train`, the loop checkpoints the step it is on and raises :class:`Stopped`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gancore.state import TrainState

SIGHUP = getattr(signal, "SIGHUP", None)  # not on Windows
STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, SIGHUP) if s is not None)


class Stopped(Exception):
    """Training stopped on a signal, after writing the checkpoint of ``step`` (``checkpoint``)."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; wrote its checkpoint, "
                         f"{checkpoint.name}")


def _leave_hung_up_terminal(ttys: list[int]) -> None:
    """Point the standard streams that were a terminal, and are no longer one (it hung up), at /dev/null.

    Every write to a hung-up terminal fails (EIO): the stop's log line, a plugin's print, the final message."""
    gone = [fd for fd in ttys if not os.isatty(fd)]
    if gone:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in gone:
            os.dup2(null, fd)
        os.close(null)


@contextlib.contextmanager
def stop_on_signals(state: TrainState, signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signals`` asks ``state``'s training loop to stop after the step it is on
    (``state.stop_signal``); the handlers in place before are then put back at once, so a second signal acts as
    it would have without us (the default for SIGTERM: die now; the last complete checkpoint stays intact). A
    signal the process ignores (``nohup`` ignores SIGHUP) stays ignored. After a SIGHUP from a terminal that has
    closed, the streams that wrote to it go to /dev/null, and further SIGHUPs do nothing else until the end: the
    shell passes its own on to its jobs, so one hang-up often arrives twice. Outside the main thread, where Python
    cannot set handlers, and in data-parallel training, where each process would stop at its own step, this does
    nothing (under ``gan train --nproc`` torchrun stops the workers; every checkpoint written stays intact)."""
    if threading.current_thread() is not threading.main_thread() or state.world.active:
        yield
        return
    state.stop_signal = None  # a stop asked of an earlier run of this state is not this one's
    ttys = [fd for fd in (1, 2) if os.isatty(fd)]
    before: dict[int, object] = {}  # never changed once set up, so a handler may read it at any time
    asked: list[int] = []
    over = False

    def ask(signum: int, _frame: FrameType | None) -> None:
        if over:  # the signal came as the block ended: act on it as we were not there
            signal.signal(signum, before[signum])  # type: ignore[arg-type]
            signal.raise_signal(signum)
            return
        if signum == SIGHUP:  # at every hang-up: a terminal may close just after it signalled
            _leave_hung_up_terminal(ttys)
        if asked:  # only a repeated SIGHUP still comes here
            return
        asked.append(signum)
        state.stop_signal = signum
        for s, handler in before.items():
            if not s == signum == SIGHUP:
                signal.signal(s, handler)  # type: ignore[arg-type]

    for s in signals:
        handler = signal.getsignal(s)
        if handler is not signal.SIG_IGN:
            before[s] = signal.SIG_DFL if handler is None else handler  # None: set outside Python
    for s in before:
        signal.signal(s, ask)
    try:
        yield
    finally:
        over = True
        if asked == [SIGHUP]:
            _leave_hung_up_terminal(ttys)  # a terminal that closed after its SIGHUP, while the step finished
        for s, handler in before.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
