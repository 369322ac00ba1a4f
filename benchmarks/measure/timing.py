"""Timers as context managers that record typed spans in seconds. Measurement only: no model code here."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator


@dataclass
class Spans:
    """Named wall-clock spans of one run, in seconds, in the order they were opened."""

    seconds: dict[str, float] = field(default_factory=dict)
    # Called as listener(name, started) right after the synchronize of a span's start (True) and end (False):
    # the run's telemetry marks its phases here, so phase names stay one list.
    listeners: list[Callable[[str, bool], None]] = field(default_factory=list)

    @contextmanager
    def span(self, name: str, sync: Callable[[], None] | None = None) -> Iterator[None]:
        """Time the body; `sync` (the vendor's synchronize) runs before both clock reads.

        The span is recorded even when the body raises, so a failed run still reports what it spent.
        """
        if sync:
            sync()
        start = time.perf_counter()
        for listener in self.listeners:
            listener(name, True)
        try:
            yield
        finally:
            if sync:
                sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            for listener in self.listeners:
                listener(name, False)
