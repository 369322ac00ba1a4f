"""Progress of a pass for people: a tqdm bar on a terminal, plain log lines otherwise.

`make_progress(quiet, log_freq)` returns the `RunRequest.progress` factory: called with a pass name, it
returns the per-question callback `(done, total, elapsed_s, tokens_done)` that `passes.run_pass` calls.
The callback does host-side arithmetic only: it adds no device synchronization to the timed loop.

* stderr is a TTY and not --quiet: one tqdm bar per pass (questions done, tokens/s, ETA).
* otherwise: a log line every `log_freq` questions and at the end (with --quiet the terminal shows only
  warnings, so these lines go to run.log alone and the terminal gets nothing but the summary).
"""
from __future__ import annotations

import io
import logging
import os
import sys
from typing import Any, Callable, TextIO

log = logging.getLogger("benchmarks")

Callback = Callable[[int, int, float, int], None]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def line(name: str, done: int, total: int, elapsed: float, tokens: int) -> str:
    rate = tokens / elapsed if elapsed > 0 else 0.0
    eta = elapsed / done * (total - done) if done else 0.0
    text = f"{name}: {done}/{total} questions, {rate:,.0f} tokens/s, elapsed {_duration(elapsed)}"
    return text + (f", ETA {_duration(eta)}" if done < total else "")


class LogProgress:
    """A log line each time `done` passes a multiple of `log_freq`, and at the last question. Passed, not hit:
    a packed pass reports several questions per forward, so `done` jumps over most multiples."""

    def __init__(self, name: str, log_freq: int):
        self.name, self.log_freq = name, max(1, log_freq)
        self.logged = 0

    def __call__(self, done: int, total: int, elapsed: float, tokens: int) -> None:
        if done // self.log_freq > self.logged // self.log_freq or done == total:
            self.logged = done
            log.info("%s", line(self.name, done, total, elapsed, tokens))


class BarProgress:
    """A tqdm bar: questions done / total, ETA (tqdm's), and tokens/s as the postfix."""

    def __init__(self, name: str, stream: TextIO):
        self.name, self.stream = name, stream
        self.bar: Any = None

    def __call__(self, done: int, total: int, elapsed: float, tokens: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.name, unit="q", file=self.stream, dynamic_ncols=True,
                            mininterval=0.5, leave=True)
        if elapsed > 0:
            self.bar.set_postfix_str(f"{tokens / elapsed:,.0f} tok/s", refresh=False)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.bar.close()
            # The summary line for run.log only: the terminal already shows the closed bar.
            file_only = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
            record = log.makeRecord(log.name, logging.INFO, __file__, 0, "%s",
                                    (line(self.name, done, total, elapsed, tokens),), None)
            for h in file_only:
                h.handle(record)


def use_bar(quiet: bool, stream: TextIO) -> bool:
    if quiet or not getattr(stream, "isatty", lambda: False)():
        return False
    try:  # a pseudo-terminal of width 0 (some CI runners) would show an empty bar: use log lines there
        if os.get_terminal_size(stream.fileno()).columns == 0:
            return False
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def make_progress(quiet: bool, log_freq: int, stream: TextIO | None = None) -> Callable[[str], Callback]:
    stream = stream or sys.stderr
    bar = use_bar(quiet, stream)

    def factory(name: str) -> Callback:
        return BarProgress(name, stream) if bar else LogProgress(name, log_freq)

    return factory
