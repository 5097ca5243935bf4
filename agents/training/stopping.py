"""Why a run stops early: a NaN or infinite update, or SIGTERM / SIGINT asking it to stop at a safe point.

``train`` checks between updates, so the updates that finished are checkpointed;
``eapo-gym compare`` stops its worker processes, which checkpoint the same way.
A second signal acts as it would without this (SIGINT raises KeyboardInterrupt,
SIGTERM ends the process), for a run that must end at once.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class NonFiniteError(RuntimeError):
    """An update gave a NaN or infinite loss or gradient norm; nothing of it was saved."""


class TrainingStopped(Exception):
    """Raised once a run stopped by a signal has kept its finished work; ``signum`` is the signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """``with StopSignals() as stop:`` the first SIGTERM or SIGINT sets ``stop.signum`` (None until then).

    Only the main thread can take signals; elsewhere this does nothing and ``signum`` stays None.
    A signal the process ignores (``SIG_IGN``, e.g. under ``nohup``) stays ignored.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            ignored = {signum for signum in SIGNALS if signal.getsignal(signum) is signal.SIG_IGN}
            self._previous = {
                signum: signal.signal(signum, self._handle) for signum in SIGNALS if signum not in ignored
            }
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.signum = signum
        print(
            f"{self.name}: stopping at the next safe point, keeping finished work (again: stop at once)",
            file=sys.stderr,
            flush=True,
        )
