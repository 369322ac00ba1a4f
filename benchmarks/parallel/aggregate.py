"""The system's record of a data-parallel run from every rank's: one stated rule per figure (RULES, the table in
docs/multi_gpu.md), each tested on made-up records (tests/harness/test_aggregate.py). `aggregate` of one record is
that record: a single-process run is rank 0 of 1 and goes through the same summary.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from ..contracts import MemoryReport, PeakFlops
from ..measure.records import PassRecord, RankRecord

# figure -> the rule, as docs/multi_gpu.md states it (and tests/harness/test_aggregate.py checks, one test each)
RULES: Mapping[str, str] = {
    "questions, tokens": "summed over ranks",
    "predictions, choices, per-question core times": "concatenated in rank order (contiguous shards)",
    "core and wall time of a pass (p_*_core, p_*_pass, p_*_whole)": "the slowest rank's",
    "non-finite questions, forwards": "summed",
    "e2e time, phase times (compile, init, ...)": "the slowest rank's",
    "energy per phase (J), counter and integrated": "summed over ranks (every device's joules)",
    "phase duration": "the slowest rank's",
    "mean and max power, idle power": "summed (the system's draw)",
    "tokens per joule": "all ranks' tokens / all ranks' joules (follows from the two rules above)",
    "clocks, temperature": "mean over ranks (max temperature: the hottest)",
    "clock-limit shares, memory sampled per phase": "the worst rank's (the largest)",
    "memory (mem_used_gib)": "per device: the rank using the most, with its device's total",
    "peak FLOP/s (MFU)": "N x the device's peak",
    "executed FLOPs, padding FLOPs": "summed (None if any rank cannot count)",
    "recompiles, CUDA graph recordings": "summed",
    "compile cache state": "rank 0's, with every rank's",
    "host CPU wait": "run and wait seconds summed, the share recomputed",
    "config, data and weights fingerprints, device type and name": "required equal: a difference is a verdict reason",
}
SAME = (("config_sha256", "config"), ("fingerprint", "weights and data fingerprint"),
        ("device_type", "device type"), ("device_name", "device name"))


def aggregate(records: Sequence[RankRecord]) -> RankRecord:
    """The system's record from every rank's (in any order); one record is returned as it is."""
    recs = sorted(records, key=lambda r: r.rank)
    if len(recs) == 1:
        return recs[0]
    first = recs[0]
    return dataclasses.replace(
        first,
        first_question=0, questions=sum(r.questions for r in recs), tokens=sum(r.tokens for r in recs),
        e2e_s=max(r.e2e_s for r in recs),
        phases_s={name: max(r.phases_s.get(name, 0.0) for r in recs) for name in _names(r.phases_s for r in recs)},
        validation=system_pass([r.validation for r in recs]), inference=system_pass([r.inference for r in recs]),
        repeats=tuple((system_pass([r.repeats[k][0] for r in recs]), system_pass([r.repeats[k][1] for r in recs]))
                      for k in range(min(len(r.repeats) for r in recs))),
        toolkit=system_toolkit([r.toolkit for r in recs]),
        memory=system_memory(recs), peak=system_peak(first.peak, len(recs)),
        executed_flops=_sum_or_none(r.executed_flops for r in recs),
        padding_flops=_sum_or_none(r.padding_flops for r in recs),
        energy=system_energy([r.energy for r in recs]), host_cpu_wait=system_host_wait([r.host_cpu_wait for r in recs]),
        ranks=tuple(rank_figures(r) for r in recs), disagreements=tuple(disagreements(recs)),
    )


def _names(mappings: Any) -> list[str]:
    return list(dict.fromkeys(k for m in mappings for k in m))


def _sum_or_none(values: Any) -> float | None:
    xs = list(values)
    return None if any(x is None for x in xs) else sum(xs)


def system_pass(records: Sequence[PassRecord | None]) -> PassRecord | None:
    """One pass of the system from the ranks' (by rank: contiguous shards in order): all questions, tokens and
    predictions, the slowest rank's times, so that tokens / core_s is all tokens / the slowest rank's summed core
    time. None when no rank ran it; a pass some ranks ran and others not cannot be combined (an error)."""
    present = [r for r in records if r is not None]
    if not present:
        return None
    if len(present) != len(records):
        raise ValueError(f"the {present[0].name} pass ran on {len(present)} of {len(records)} ranks")
    if len(present) == 1:
        return present[0]
    choice = [r.choice_predictions for r in present]
    return dataclasses.replace(
        present[0],
        n_questions=sum(r.n_questions for r in present), tokens=sum(r.tokens for r in present),
        core_s=max(r.core_s for r in present), whole_s=max(r.whole_s for r in present),
        predictions=tuple(p for r in present for p in r.predictions),
        core_s_each=tuple(t for r in present for t in r.core_s_each),
        nonfinite_questions=sum(r.nonfinite_questions for r in present),
        choice_predictions=None if any(c is None for c in choice) else tuple(p for c in choice for p in c),
        forwards=sum(r.forwards for r in present),
        max_prompts_per_forward=max(r.max_prompts_per_forward for r in present),
    )


def system_peak(peak: PeakFlops, devices: int) -> PeakFlops:
    """The peak of `devices` devices of one kind (MFU of a data-parallel run is against N x peak)."""
    if devices <= 1 or not peak.value:
        return peak
    return PeakFlops(peak.value * devices, f"{devices} x {peak.value:.4g} FLOP/s ({peak.source})")


def system_memory(records: Sequence[RankRecord]) -> MemoryReport:
    """Memory per device: the rank using the most (and its device's total)."""
    top = max(records, key=lambda r: r.memory.used_gib or 0.0)
    m = top.memory
    return dataclasses.replace(m, source=f"{m.source} (per device: the largest of {len(records)} ranks, rank {top.rank})")


def system_toolkit(reports: Sequence[Mapping[str, Any] | None]) -> Mapping[str, Any] | None:
    """Recompiles and CUDA graph recordings summed (any rank's counts against the run); rank 0's compile cache state
    with every rank's; the first compile fallback, naming its rank; the rest rank 0's."""
    if reports[0] is None:
        return None
    out = dict(reports[0])
    out["recompiles"] = sum(int(r.get("recompiles") or 0) for r in reports if r)
    graphs = [r.get("graph_recordings") for r in reports if r]
    out["graph_recordings"] = None if all(g is None for g in graphs) else sum(g or 0 for g in graphs)
    caches = [(r or {}).get("compile_cache") for r in reports]
    if out.get("compile_cache") is not None:
        out["compile_cache"] = {**out["compile_cache"], "ranks": [(c or {}).get("state") for c in caches]}
    fallbacks = [(k, r.get("compile_fallback")) for k, r in enumerate(reports) if r and r.get("compile_fallback")]
    out["compile_fallback"] = f"rank {fallbacks[0][0]}: {fallbacks[0][1]}" if fallbacks else None
    return out


_PHASE_SUM = ("energy_j", "counter_j", "integrated_power_j", "mean_power_w", "max_power_w", "samples")
_PHASE_MEAN = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c")
_PHASE_MAX = ("duration_s", "max_temperature_c", "max_mem_used_gib")


def system_energy(blocks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Every device's joules summed per phase, so the system's tokens per joule is all tokens / all joules (the
    rules of RULES); unavailable when any rank has no telemetry (the system's energy would be a part of it)."""
    missing = [(k, b.get("reason")) for k, b in enumerate(blocks) if not b.get("available")]
    if missing:
        return {"available": False, "reason": f"rank {missing[0][0]}: {missing[0][1]}"}
    first = blocks[0]
    phases = {}
    for name in _names(b["phases"] for b in blocks):
        rows = [b["phases"].get(name) for b in blocks]
        if any(r is None for r in rows):
            continue  # a phase not every rank went through (e.g. val_warmup on an empty shard): no system figure
        row: dict[str, Any] = {}
        for key in _PHASE_SUM:
            row[key] = _sum_or_none(r.get(key) for r in rows)
        for key in _PHASE_MEAN:
            xs = [r.get(key) for r in rows if r.get(key) is not None]
            row[key] = sum(xs) / len(xs) if xs else None
        for key in _PHASE_MAX:
            xs = [r.get(key) for r in rows if r.get(key) is not None]
            row[key] = max(xs) if xs else None
        sources = {r.get("energy_source") for r in rows}
        row["energy_source"] = sources.pop() if len(sources) == 1 else "mixed"
        shares = [r.get("limit_shares") for r in rows]
        row["limit_shares"] = None if any(s is None for s in shares) else {
            k: max(s.get(k, 0.0) for s in shares) for k in _names(shares)}
        phases[name] = row
    cross = [b.get("cross_check") for b in blocks]
    system_cross = None
    if all(c is not None for c in cross):
        c, i = sum(x["counter_j"] for x in cross), sum(x["integrated_power_j"] for x in cross)
        system_cross = {**cross[0], "counter_j": c, "integrated_power_j": i, "rel_diff": (i - c) / c if c else None,
                        "agrees": all(x["agrees"] for x in cross)}
    notes = [f"rank {k}: {b['note']}" for k, b in enumerate(blocks) if b.get("note")]
    return {**first, "phases": phases, "cross_check": system_cross, "note": "; ".join(notes) or None,
            "idle_power_w": _sum_or_none(b.get("idle_power_w") for b in blocks),
            "idle_s": max(b.get("idle_s") or 0.0 for b in blocks), "samples": sum(b.get("samples") or 0 for b in blocks),
            "errors": [f"rank {k}: {e}" for k, b in enumerate(blocks) for e in b.get("errors") or ()],
            "ranks": len(blocks)}


def system_host_wait(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Run and wait seconds of each labelled span summed over ranks, the wait share recomputed from the sums."""
    if any(not r.get("available") for r in records):
        return next(r for r in records if not r.get("available"))
    spans: dict[str, dict[str, float]] = {}
    for label in _names(r.get("spans") or {} for r in records):
        run = sum(float(((r.get("spans") or {}).get(label) or {}).get("run_s") or 0.0) for r in records)
        wait = sum(float(((r.get("spans") or {}).get(label) or {}).get("wait_s") or 0.0) for r in records)
        spans[label] = {"run_s": run, "wait_s": wait, "wait_share": wait / (run + wait) if run + wait > 0 else 0.0}
    return {**records[0], "spans": spans}


def rank_figures(r: RankRecord) -> dict[str, Any]:
    """One rank's own figures, for result.json's `distributed.ranks`: where it ran, its shard, its times and memory,
    and its throughputs from its own tokens and times."""
    out: dict[str, Any] = {
        "rank": r.rank, "local_rank": r.local_rank, "host": r.host, "device": r.device, "device_type": r.device_type,
        "device_name": r.device_name, "first_question": r.first_question, "questions": r.questions,
        "tokens": r.tokens, "e2e_time": r.e2e_s, "compile_time": r.phases_s.get("compile"),
        "config_sha256": r.config_sha256, "fingerprint": dict(r.fingerprint), "mem_used_gib": r.memory.used_gib,
        "mem_total_gib": r.memory.total_gib, "mem_source": r.memory.source, "mem_samples": r.memory.samples,
        "mem_details": dict(r.memory.details), "executed_flops": r.executed_flops, "padding_flops": r.padding_flops,
        "e_infer_j": (((r.energy.get("phases") or {}).get("inference") or {}).get("energy_j")
                      if r.energy.get("available") else None)}
    for key, rec in (("val", r.validation), ("infer", r.inference)):
        out[f"{key}_core_s"] = rec.core_s if rec else None
        out[f"{key}_whole_s"] = rec.whole_s if rec else None
    return out


def disagreements(records: Sequence[RankRecord]) -> list[str]:
    """What ranks that measure one workload must share and do not (each a verdict reason)."""
    first = records[0]
    out = []
    for key, what in SAME:
        differ = [r.rank for r in records if getattr(r, key) != getattr(first, key)]
        if differ:
            out.append(f"ranks {differ} saw another {what} than rank {first.rank}: {key} differs")
    return out
