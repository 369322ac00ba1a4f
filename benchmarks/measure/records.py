"""The records a run measures, as plain serializable data (no torch): what one timed pass recorded, and what one
rank measured whole. Produced by benchmarks.harness, combined over ranks by benchmarks.parallel.aggregate, read by
the summary (metrics, verdict) and the writer."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..contracts import MemoryReport, PeakFlops


@dataclass(frozen=True)
class PassRecord:
    """What one pass measured. Times in seconds; `core_s_each[i]` is prompt i's forward time (in a pack, the
    pack's time shared out by token count)."""

    name: str
    n_questions: int
    tokens: int
    core_s: float
    whole_s: float
    predictions: tuple[int, ...]
    core_s_each: tuple[float, ...]
    nonfinite_questions: int
    # argmax over only the answer-choice ids (hendrycks/lm-eval scoring), when the case names them
    choice_predictions: tuple[int, ...] | None = None
    forwards: int = 0  # model calls: n_questions at batch 1, the number of packs when packing
    pack_tokens: int = 0
    max_prompts_per_forward: int = 1


@dataclass(frozen=True)
class RankRecord:
    """What one rank of a run measured, whole: a single-process run is rank 0 of 1. `parallel.aggregate` makes
    the system's record of the same type from every rank's (the identity for one); the summary and the writer
    read only records. Serializable with `as_json` / `of_json` (what a rank sends to rank 0).

    validation / inference: run 1's passes over this rank's shard (None: not run); repeats: `--repeat`'s runs
    2..N as (validation or None, inference or None). toolkit: result.json's `toolkit_report` block (its
    `compile_fallback` included); optimizations: the labels of the named optimizations in effect. energy: the
    energy block of this rank's telemetry (measure.energy). ranks / disagreements: set by the aggregate on the
    system record only (each rank's figures; what ranks that must agree did not). timeline: what timeline.png
    draws; workload: the case's workload the run loaded (every rank loads it whole): both kept on the rank that
    measured them, never sent.
    """

    rank: int
    world_size: int
    local_rank: int
    host: str
    device: str
    device_type: str
    device_name: str
    first_question: int
    questions: int
    tokens: int
    e2e_s: float
    phases_s: Mapping[str, float]
    validation: PassRecord | None
    inference: PassRecord | None
    repeats: tuple[tuple[PassRecord | None, PassRecord | None], ...]
    toolkit: Mapping[str, Any] | None
    optimizations: tuple[str, ...]
    memory: MemoryReport
    peak: PeakFlops
    executed_flops: float | None
    padding_flops: float | None
    energy: Mapping[str, Any]
    host_cpu_wait: Mapping[str, Any]
    fingerprint: Mapping[str, str]
    config_sha256: str
    model: Mapping[str, Any] | None
    ranks: tuple[Mapping[str, Any], ...] = ()
    disagreements: tuple[str, ...] = ()
    timeline: Any = field(default=None, compare=False, repr=False)
    workload: Any = field(default=None, compare=False, repr=False)

    def passes(self) -> list[PassRecord]:
        """Run 1's passes that happened, validation first."""
        return [p for p in (self.validation, self.inference) if p is not None]

    def as_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("timeline", "workload")}
        out["validation"] = _pass_json(self.validation)
        out["inference"] = _pass_json(self.inference)
        out["repeats"] = [[_pass_json(v), _pass_json(i)] for v, i in self.repeats]
        out["memory"] = dataclasses.asdict(self.memory)
        out["peak"] = dataclasses.asdict(self.peak)
        return out

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> "RankRecord":
        d = dict(data)
        d["validation"], d["inference"] = _pass_of(d["validation"]), _pass_of(d["inference"])
        d["repeats"] = tuple((_pass_of(v), _pass_of(i)) for v, i in d["repeats"])
        d["memory"], d["peak"] = MemoryReport(**d["memory"]), PeakFlops(**d["peak"])
        d["optimizations"] = tuple(d["optimizations"])
        d["ranks"], d["disagreements"] = tuple(d.get("ranks") or ()), tuple(d.get("disagreements") or ())
        return cls(**d)


def _pass_json(rec: PassRecord | None) -> dict[str, Any] | None:
    return None if rec is None else dataclasses.asdict(rec)


def _pass_of(data: Mapping[str, Any] | None) -> PassRecord | None:
    if data is None:
        return None
    return PassRecord(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
