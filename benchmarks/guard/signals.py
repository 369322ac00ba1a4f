"""SIGINT and SIGTERM of the command line, from the process's first line to its last (docs/errors_and_faults.md).

A stop request is never lost and never becomes a traceback or a misleading error:

* `install()` is the first thing run_benchmark.py does, before any heavy import. Until the CLI starts, and
  while it imports torch, transformers, a case or a vendor (`deferred()`), a signal is only recorded: a
  KeyboardInterrupt raised inside a library's import can be swallowed by its code (the run then went on to
  exit 0) or leave a half-imported module (exit 3 with an import error). It is raised when the import ends.
* While the CLI works (`start()`), a signal raises KeyboardInterrupt("signal N"); a second one within
  COALESCE_S of the first (two Ctrl-C 3-5 ms apart) is recorded, not raised into the first one's clean-up.
  `requested()` tells whether a stop was asked for, so a crash that follows one (an import cut deep inside
  a library) is reported as the interruption it is; `check()` raises again a request a library swallowed.
* Once the CLI has caught the interruption (`caught()`) or the run has completed (`settle()`), signals
  change nothing: the exit code stays the run's (130; 0 for a run that completed), and the interpreter's
  shutdown (atexit) is never interrupted.
"""
from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
import time
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
COALESCE_S = 1.0  # a second signal this soon after the first is the same request (a double Ctrl-C)

_mode = "record"  # record | raise | settled
_requested: int | None = None  # the first signal of this CLI call
_pending = False  # a request the CLI has not caught yet
_raised_at: float | None = None


def _handler(signum: int, frame: Any) -> None:
    global _requested, _pending, _raised_at
    if _mode == "settled":
        return
    if _requested is None:
        _requested = signum
    _pending = True
    if _mode != "raise":
        return
    now = time.monotonic()
    if _raised_at is not None and now - _raised_at < COALESCE_S:
        return
    _raised_at = now
    raise KeyboardInterrupt(f"signal {signum}")


def _ours(previous: dict[int, Any]) -> bool:
    return any(h is _handler for h in previous.values())


def _unraisable(info: Any) -> None:
    """Our KeyboardInterrupt raised inside a finalizer or weakref callback (a matplotlib figure being freed) is
    dropped by Python with a traceback on stderr, and the request was lost: no traceback, and the interruption
    is raised again in the main thread's next ordinary code."""
    global _raised_at
    if isinstance(info.exc_value, KeyboardInterrupt) and str(info.exc_value).startswith("signal "):
        if _mode == "raise" and _pending:
            _raised_at = None
            _thread.interrupt_main(_requested or signal.SIGTERM)
        return
    _previous_hook(info)


_previous_hook = sys.unraisablehook


def install() -> dict[int, Any]:
    """Our handler for SIGINT and SIGTERM (recording only, until start()); returns the handlers it replaced."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    if threading.current_thread() is not threading.main_thread():  # embedded in a thread: Python allows none
        return previous
    for sig in SIGNALS:
        signal.signal(sig, _handler)
    global _previous_hook
    if sys.unraisablehook is not _unraisable:  # the hook in place now (a test runner's, say) gets the others
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    return previous


def start() -> dict[int, Any]:
    """The CLI begins: signals interrupt from here on. One that came while the process started (recorded by
    run_benchmark.py's install()) is raised by the first check(). Returns what end() restores."""
    global _mode, _requested, _pending, _raised_at
    previous = install()
    if not _ours(previous):  # called in-process (tests): nothing of an earlier call carries over
        _requested, _pending = None, False
    _raised_at = None
    _mode = "raise"
    return previous


def check() -> None:
    """Raise a stop request that was recorded (startup, a deferred import) or that library code swallowed."""
    global _raised_at
    if _mode == "raise" and _pending:
        _raised_at = time.monotonic()
        raise KeyboardInterrupt(f"signal {_requested}")


def requested() -> int | None:
    """The signal that asked this CLI call to stop, or None."""
    return _requested


def caught() -> None:
    """The CLI has the interruption in hand: later signals change nothing, its clean-up is not cut."""
    global _mode, _pending
    _mode, _pending = "settled", False


def settle() -> None:
    """The run is over and recorded (completed): later signals change nothing."""
    global _mode, _pending
    _mode, _pending = "settled", False


def active() -> bool:
    return _mode == "raise"


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Record signals while the block runs (heavy imports); raise one that came when it ends."""
    global _mode
    before = _mode
    if before == "raise":
        _mode = "record"
    try:
        yield
    finally:
        _mode = before
    check()


def end(previous: dict[int, Any]) -> None:
    """The CLI returns. In the process's own entry point (run_benchmark.py installed us first) the signals are
    ignored until the process exits: Python puts the default action (death by the signal, 143) back for a
    handler of its own at shutdown, but keeps an ignored signal ignored. Called in-process, put the caller's
    handlers back."""
    global _mode, _requested, _pending
    if _ours(previous):
        settle()
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        return
    if threading.current_thread() is threading.main_thread():
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if sys.unraisablehook is _unraisable:
            sys.unraisablehook = _previous_hook
    _mode, _requested, _pending = "record", None, False
