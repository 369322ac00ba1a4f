"""The run's side of the optional vendor telemetry, and the clock of the run's timeline.

`RunTelemetry` is a context manager around the run: it enters the vendor's `Telemetry` (which first takes
the idle baseline), forwards every phase boundary of the run's `Spans` to `Telemetry.mark` (so phase names
stay the one list of span names), and records, on the same monotonic clock, the phases' intervals and each
forward's end with the tokens done (for throughput over time on timeline.png). Measurement only: the
figures are computed in benchmarks.measure.energy; a telemetry that fails never fails the run (it is then reported
as unavailable, with the reason).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import one_line
from ..contracts import IDLE_PHASE, TelemetryRecord, telemetry_of
from .timing import Spans

log = logging.getLogger("benchmarks")

Progress = Callable[[int, int, float, int], None]


@dataclass
class Timeline:
    """What timeline.png shows, on seconds since the run's telemetry started (t = 0)."""

    phases: list[tuple[str, float, float]] = field(default_factory=list)  # name, start, end
    forwards: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # pass -> (end, tokens done)
    record: TelemetryRecord | None = None
    offset_s: float = 0.0  # add to a record's t_s to get the timeline's t
    reason: str | None = None  # why there is no record


class RunTelemetry:
    def __init__(self, vendor: Any, spans: Spans, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reason: str | None = None
        self.record: TelemetryRecord | None = None
        try:
            self.telemetry = telemetry_of(vendor)
        except Exception as exc:  # noqa: BLE001 - telemetry is extra: the run goes on without it
            self.telemetry, self.reason = None, f"vendor.telemetry() failed: {type(exc).__name__}: {one_line(exc, 200)}"
        if self.telemetry is None and self.reason is None:
            self.reason = f"vendor '{vendor.name}' reports no telemetry (no energy counter or power readings)"
        self.timeline = Timeline(reason=self.reason)
        self._start = clock()
        self._open: dict[str, float] = {}
        spans.listeners.append(self._span)

    def __enter__(self) -> "RunTelemetry":
        self._start = self._clock()
        if self.telemetry is not None:
            try:
                self.telemetry.__enter__()
            except Exception as exc:  # noqa: BLE001
                self._drop(f"telemetry failed to start: {type(exc).__name__}: {one_line(exc, 200)}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.telemetry is None:
            return
        try:
            self.telemetry.__exit__(*exc)
            self.record = self.telemetry.report()
            self.timeline.record = self.record
            self.timeline.offset_s = off = self.record.start_monotonic - self._start
            idle = [(m.t_s + off, n.t_s + off) for m, n in zip(self.record.marks, self.record.marks[1:])
                    if m.phase == IDLE_PHASE]
            self.timeline.phases[:0] = [(IDLE_PHASE, a, b) for a, b in idle]
        except Exception as error:  # noqa: BLE001
            self._drop(f"telemetry failed: {type(error).__name__}: {one_line(error, 200)}")

    def _drop(self, reason: str) -> None:
        log.warning("%s; energy not reported", reason)
        self.telemetry, self.record, self.reason = None, None, reason
        self.timeline.record, self.timeline.reason = None, reason

    def _now(self) -> float:
        return self._clock() - self._start

    def _span(self, name: str, started: bool) -> None:
        if started:
            self._open[name] = self._now()
        elif name in self._open:
            self.timeline.phases.append((name, self._open.pop(name), self._now()))
        if self.telemetry is not None:
            try:
                self.telemetry.mark(name if started else None)
            except Exception as exc:  # noqa: BLE001 - the protocol says it never raises; be sure
                log.warning("telemetry mark(%r): %s: %s", name, type(exc).__name__, exc)

    def wrap(self, name: str, progress: Progress | None, log_freq: int) -> Progress:
        """The pass's per-forward callback, recording (time, tokens done) and then calling `progress`; without
        one it logs every `log_freq` questions as `run_pass` does."""
        points = self.timeline.forwards.setdefault(name, [])
        last = [0]

        def callback(done: int, total: int, elapsed_s: float, tokens_done: int) -> None:
            points.append((self._now(), tokens_done))
            if progress is not None:
                progress(done, total, elapsed_s, tokens_done)
            elif done // log_freq > last[0] // log_freq or done == total:
                log.info("%s: %d/%d questions", name, done, total)
            last[0] = done

        return callback
