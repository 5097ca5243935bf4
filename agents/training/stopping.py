"""Why a run stops early: a NaN or infinite update, experts that never answer, or SIGTERM / SIGINT asking it
to stop at a safe point.

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


class ExpertsFailing(RuntimeError):
    """Every expert call failed in each of the first updates that made calls (``FailingExperts``)."""


class FailingExperts:
    """Makes experts that fail loud, update by update.

    ``check`` takes an update's expert calls and failures and the experts' running failure counts
    (``ExpertPanel.failed_by``: expert -> (failed calls, latest error)). Where more than ``share`` of the
    update's calls failed it returns one line per failing expert, naming it and its latest error. If every
    call failed in each of the first ``stop_after`` updates that made calls, it raises ``ExpertsFailing``
    (``stop_after`` 0: never); one update with a successful call ends that watch.
    """

    def __init__(self, share: float, stop_after: int) -> None:
        self.share, self.stop_after = share, stop_after
        self.all_failed: int | None = 0  # updates with calls, all failed, from the start; None: one worked
        self.seen: dict[str, int] = {}

    def check(
        self, step: int, calls: float, failures: float, failed_by: dict[str, tuple[int, str]]
    ) -> list[str]:
        new = {name: (count - self.seen.get(name, 0), error) for name, (count, error) in failed_by.items()}
        self.seen = {name: count for name, (count, _) in failed_by.items()}
        if calls <= 0:
            return []
        named = [f"{name}: {count} failed ({error})" for name, (count, error) in new.items() if count > 0]
        errors = "; ".join(named) or "see info['expert_failures']"
        if self.all_failed is not None:
            self.all_failed = self.all_failed + 1 if failures >= calls else None
        if self.stop_after and self.all_failed is not None and self.all_failed >= self.stop_after:
            raise ExpertsFailing(
                f"every expert call failed in the first {_updates(self.all_failed)} that made calls "
                f"({errors}); check the experts, or pass --expert-failure-stop 0 to train on without them"
            )
        if failures / calls <= self.share:
            return []
        share = f"{failures:.0f} of {calls:.0f} expert calls failed"
        return [f"update {step}: {share}; expert {line}" for line in named] or [f"update {step}: {share}"]


def expert_failures(envs) -> dict[str, tuple[int, str]]:
    """The failures so far of ``envs``' experts (``ExpertPanel.failed_by``); none before envs exist."""
    return getattr(getattr(envs, "panel", None), "failed_by", {})


def _updates(count: int) -> str:
    return "update" if count == 1 else f"{count} updates"


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
