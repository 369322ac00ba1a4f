"""The result record of one run: a typed dataclass that the runner fills phase by phase and that is
serialized in one place (`as_dict`, written by benchmarks.reporting.writer). docs/results_schema.md
documents every field. Fields that a run has not reached yet are left out of result.json (UNSET), so a
partial result shows exactly the phases it finished.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

# The result.json schema (docs/results_schema.md); its history is there. 2: adds accuracy, throughput_by_length, gate,
# environment.git_commit/git_dirty, and environment.device_count/driver/cuda always present (null if unknown).
# 3: adds `energy`, the energy metrics (e_val_j, e_infer_j, tokens_per_joule_*, avg_power_w, idle_power_w,
# energy_reason) and their result.csv columns.
SCHEMA_VERSION = 3


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass
class RunResult:
    # header: known before the run starts
    run_id: str  # also in every row of predictions.partial.jsonl
    case: str
    vendor: str
    toolkit: str
    precision: str
    tf32: bool
    batch_size: int
    synthetic_weights: bool
    limit: int | None
    smoke: bool
    start_time: str
    environment: dict[str, Any]
    config: dict[str, Any]
    config_sources: dict[str, str]
    config_sha256: str
    schema_version: int = SCHEMA_VERSION
    status: str = "running"  # running, completed, failed, interrupted
    scenario: str = "optimized"  # benchmarks.config.scenarios
    load_path: str = "direct"  # Case.build_model's load_path
    world_size: int = 1  # processes (devices) of a data-parallel run; 1: one process, no process group
    distributed: dict[str, Any] = UNSET  # world_size > 1: backend, hosts, sharding; per-rank figures when completed
    # after init
    fingerprint: Mapping[str, str] = UNSET
    counts: dict[str, Any] = UNSET
    # after each phase
    phases_done: list[str] = field(default_factory=list)
    phases_s: dict[str, float] = UNSET
    metrics_partial: dict[str, Any] = UNSET
    repeat: dict[str, Any] = UNSET  # --repeat N > 1
    # when completed
    metrics: dict[str, Any] = UNSET
    peak_flops: dict[str, Any] = UNSET
    memory: dict[str, Any] = UNSET
    toolkit_report: dict[str, Any] = UNSET
    optimizations: list[str] = UNSET
    model: dict[str, int] | None = UNSET  # the case model's architecture() (None: the model does not say)
    forwards: dict[str, dict[str, Any]] = UNSET  # per pass: forwards, prompts per forward (mean, max)
    packing: dict[str, Any] | None = UNSET
    nonfinite_questions: dict[str, int | None] = UNSET
    verdict: dict[str, Any] = UNSET
    accuracy: dict[str, Any] = UNSET
    throughput_by_length: dict[str, Any] = UNSET
    energy: dict[str, Any] = UNSET  # benchmarks.measure.energy.energy_block: {"available": false, "reason"} without telemetry
    host_cpu_wait: dict[str, Any] = UNSET  # benchmarks.measure.host_cpu: per pass, how long the host's load kept a CPU away
    reference_record: dict[str, Any] = UNSET  # the reference's final record (metrics.reference_record)
    gate: dict[str, Any] = UNSET  # --baseline
    error: str = UNSET  # failed or interrupted: "Type: message"
    files: list[str] = UNSET  # the run's files in its folder (what --overwrite later removes: benchmarks.guard.safe_io)

    # The order of result.json: the header as documented, then the rest as the run reaches it.
    _HEADER = ("schema_version", "run_id", "status", "case", "scenario", "load_path", "vendor", "toolkit", "precision", "tf32", "batch_size",
               "synthetic_weights", "limit", "smoke", "start_time", "environment", "config", "config_sources",
               "config_sha256")

    def as_dict(self) -> dict[str, Any]:
        names = [*self._HEADER, *(f.name for f in dataclasses.fields(self) if f.name not in self._HEADER)]
        return {n: getattr(self, n) for n in names if getattr(self, n) is not UNSET}
