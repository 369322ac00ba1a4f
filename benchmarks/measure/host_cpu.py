"""How long this process's threads waited for a CPU while they were ready to run, per timed pass.

Other processes on the host slow a pass down by taking the CPUs its threads need (the host thread that
launches a GPU's kernels, or the whole model on a CPU). The kernel counts, per thread, the time spent running
and the time spent runnable but waiting on a run queue (/proc/self/task/<tid>/schedstat, Linux with schedstats).
The wait share of a pass, c = wait / (run + wait) summed over the threads, is how much of its time the host's
load took: the regression gate judges each run's throughput as if the host had been idle, x / (1 - c)
(benchmarks.reporting.noise), so other processes' load is not blamed on the code. Where the counters are missing the record says why and nothing is judged by it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

SOURCE = "/proc/self/task/*/schedstat (run and run-queue wait time of this process's threads)"
_TASKS = "/proc/self/task"


def read() -> tuple[int, int] | None:
    """(run ns, wait ns) summed over this process's threads, or None where the kernel does not count them."""
    run = wait = 0
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return None
    seen = False
    for tid in tids:
        try:
            with open(f"{_TASKS}/{tid}/schedstat", encoding="ascii") as f:
                fields = f.read().split()
        except OSError:  # a thread that ended between the listing and the read
            continue
        if len(fields) < 2:
            continue
        run, wait, seen = run + int(fields[0]), wait + int(fields[1]), True
    return (run, wait) if seen else None


class HostWait:
    """Per labelled span: the threads' run and wait seconds and the wait share (result.json `host_cpu_wait`)."""

    def __init__(self) -> None:
        self.spans: dict[str, dict[str, float]] = {}
        self.reason: str | None = None if read() is not None else f"not available: {SOURCE} cannot be read"

    @contextmanager
    def measure(self, label: str) -> Iterator[None]:
        start = read() if self.reason is None else None
        try:
            yield
        finally:
            end = read() if start is not None else None
            if start is not None and end is not None:
                run_s, wait_s = (end[0] - start[0]) / 1e9, (end[1] - start[1]) / 1e9
                busy = run_s + wait_s
                self.spans[label] = {"run_s": run_s, "wait_s": wait_s,
                                     "wait_share": wait_s / busy if busy > 0 else 0.0}

    def record(self) -> dict[str, Any]:
        if self.reason is not None:
            return {"available": False, "reason": self.reason}
        return {"available": True, "source": SOURCE, "spans": dict(self.spans)}


def span_share(record: Any, labels: tuple[str, ...]) -> float | None:
    """The wait share over exactly the spans `labels` of a result's `host_cpu_wait`; None when not recorded."""
    if not isinstance(record, dict) or not record.get("available"):
        return None
    spans = [s for label, s in (record.get("spans") or {}).items() if label in labels and isinstance(s, dict)]
    run = sum(float(s.get("run_s") or 0.0) for s in spans)
    wait = sum(float(s.get("wait_s") or 0.0) for s in spans)
    return wait / (run + wait) if spans and run + wait > 0 else None


def run_shares(record: Any, pass_name: str, runs: int, with_compile: bool = False) -> list[float | None]:
    """The wait share of each run of `pass_name` (run 1, then --repeat's runs 2..`runs`): run 1's pass span (with
    the compile span when `with_compile`), then `<pass> (repeat k/N)`; None where not recorded."""
    first = span_share(record, (pass_name, "compile") if with_compile else (pass_name,))
    return [first] + [span_share(record, (f"{pass_name} (repeat {k}/{runs})",)) for k in range(2, runs + 1)]
