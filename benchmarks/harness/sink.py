"""Where a running rank reports its progress: the phases it finished, each pass's record, the prediction stream.
A single process reports to the run's writer (benchmarks.reporting.writer.RunWriter), which keeps result.json
current so a failed or interrupted run still shows what it finished; the ranks of a data-parallel run report
through benchmarks.parallel.distributed's sinks (each pass's record goes to rank 0, whose writer shows the system's
pass). The harness knows no file and no other rank: it only calls these.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from ..measure.records import PassRecord

Stream = Callable[[int, list[int]], None]  # (first question of the chunk, its predictions)


@runtime_checkable
class Sink(Protocol):
    def workload(self, samples: Sequence[Any], shard: tuple[int, int], fingerprint: Mapping[str, str],
                 counts: Mapping[str, Any]) -> None:
        """The workload's questions (all of them), this rank's shard of them [lo, hi), the workload's fingerprint
        and counts, after init."""

    def stream(self, pass_name: str) -> Stream | None:
        """A callback for each chunk of a pass's predictions as they come (None: nothing to keep)."""

    def pass_done(self, rec: PassRecord) -> None:
        """One of run 1's passes finished (this rank's shard)."""

    def phase_done(self, name: str, phases_s: Mapping[str, float]) -> None:
        """A phase ended (init, validation, compile, inference, repeat_<k>), with every phase's seconds so far."""

    def times(self, phases_s: Mapping[str, float]) -> None:
        """Every phase's seconds so far, whenever a timed span ends: also one that ended by raising, so a failed
        run records how long it got."""


class NullSink:
    """Reports nowhere: a run nobody watches (its record is returned at the end)."""

    def workload(self, samples: Sequence[Any], shard: tuple[int, int], fingerprint: Mapping[str, str],
                 counts: Mapping[str, Any]) -> None:
        pass

    def stream(self, pass_name: str) -> Stream | None:
        return None

    def pass_done(self, rec: PassRecord) -> None:
        pass

    def phase_done(self, name: str, phases_s: Mapping[str, float]) -> None:
        pass

    def times(self, phases_s: Mapping[str, float]) -> None:
        pass
