"""A polite stop: SIGTERM or SIGHUP during training finishes the step, checkpoints it, and stops.

Schedulers send SIGTERM before they kill a job (SLURM at its time limit or on pre-emption, Kubernetes when it
evicts a pod, ``systemctl stop``), and a closed terminal sends SIGHUP. Without a handler the process dies between
checkpoints and loses every step since the last one; with :func:`stop_on_signals` around
:func:`gancore.loop.train`, the loop checkpoints the step it is on and raises :class:`Stopped`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gancore.state import TrainState

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """Training stopped on a signal, after writing the checkpoint of ``step`` (``checkpoint``)."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; wrote its checkpoint, "
                         f"{checkpoint.name}")


@contextlib.contextmanager
def stop_on_signals(state: TrainState, signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signals`` asks ``state``'s training loop to stop after the step it is on
    (``state.stop_signal``); the handlers in place before are then put back at once, so a second signal acts as
    it would have without us (the default for SIGTERM: die now; the last complete checkpoint stays intact). A
    signal the process ignores (``nohup`` ignores SIGHUP) stays ignored. Outside the main thread, where Python
    cannot set handlers, and in data-parallel training, where each process would stop at its own step, this does
    nothing (under ``gan train --nproc`` torchrun stops the workers; every checkpoint written stays intact)."""
    if threading.current_thread() is not threading.main_thread() or state.world.active:
        yield
        return
    before: dict[int, object] = {}

    def restore() -> None:
        for s, handler in before.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        before.clear()

    def ask(signum: int, _frame: FrameType | None) -> None:
        if state.stop_signal is None:
            state.stop_signal = signum
        restore()

    for s in signals:
        handler = signal.getsignal(s)
        if handler is not signal.SIG_IGN:
            before[s] = signal.SIG_DFL if handler is None else handler  # None: set outside Python
            signal.signal(s, ask)
    try:
        yield
    finally:
        restore()
