"""Energy figures of a run, computed from a vendor's raw `TelemetryRecord` (the energy part of
benchmarks.measure.metrics, which re-exports `energy_block` and `energy_metrics`; nothing here reads a device).

A phase's energy is the device's energy counter's delta between the phase's marks (its readings in
between are chained, so a counter that wraps, even several times, is followed; a step that would mean more
than MAX_PLAUSIBLE_W is a reset and makes the counter unusable for that phase). Without a usable counter it
is the sampled power integrated over the phase (trapezoids, the power at the phase's edges interpolated),
and the result says so. Power, clocks and temperature are means (and maxima) over the phase's samples;
clock-limit shares are the share of its samples with each reason. The idle baseline is reported, never
subtracted.
"""
from __future__ import annotations

import bisect
import statistics
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..contracts import CLOCK_LIMITS, IDLE_PHASE, TelemetryMark, TelemetryRecord, TelemetrySample

if TYPE_CHECKING:
    from .records import PassRecord

# Counter energy and integrated sampled power of the inference pass must agree this well (the GPU check).
CROSS_CHECK_TOLERANCE = 0.05
# A counter step implying more than this is not energy but a reset (a driver reload) or a bad reading.
MAX_PLAUSIBLE_W = 100_000.0
ENERGY_METRICS = ("e_val_j", "e_infer_j", "tokens_per_joule_whole", "tokens_per_joule_core", "avg_power_w",
                  "idle_power_w", "mem_infer_gib", "energy_reason")

Window = tuple[str, float, float, "float | None", "float | None"]  # phase, t0, t1, counter at t0, at t1


def windows(marks: Sequence[TelemetryMark]) -> list[Window]:
    """The closed phase intervals of the marks, in order (a phase still open at the last mark is dropped)."""
    out: list[Window] = []
    current: TelemetryMark | None = None
    for m in marks:
        if current is not None:
            out.append((current.phase, current.t_s, m.t_s, current.energy_j, m.energy_j))
        current = m if m.phase is not None else None
    return out


def counter_energy(readings: Sequence[tuple[float, float | None]], wrap_j: float | None) -> float | None:
    """Joules between the first and last (time, counter) reading, following wraps; None when a reading is
    missing or a step goes backwards without a known modulus or would mean an implausible power."""
    if len(readings) < 2 or any(e is None for _, e in readings):
        return None
    total = 0.0
    for (t0, e0), (t1, e1) in zip(readings, readings[1:]):
        step = e1 - e0
        if step < 0:
            if wrap_j is None:
                return None
            step += wrap_j
        if step > MAX_PLAUSIBLE_W * max(t1 - t0, 0.0) + 1.0:
            return None
        total += step
    return total


def _power_points(samples: Iterable[TelemetrySample]) -> tuple[list[float], list[float]]:
    pts = sorted((s.t_s, s.power_w) for s in samples if s.power_w is not None)
    return [t for t, _ in pts], [p for _, p in pts]


def _power_at(ts: list[float], ps: list[float], t: float) -> float:
    i = bisect.bisect_left(ts, t)
    if i == 0:
        return ps[0]
    if i == len(ts):
        return ps[-1]
    t0, t1 = ts[i - 1], ts[i]
    return ps[i] if t1 == t0 else ps[i - 1] + (ps[i] - ps[i - 1]) * (t - t0) / (t1 - t0)


def integrate_power(samples: Sequence[TelemetrySample], t0: float, t1: float) -> float | None:
    """Joules of the sampled power over [t0, t1] (trapezoids; constant beyond the first/last sample)."""
    ts, ps = _power_points(samples)
    if not ts or t1 < t0:
        return None
    inner = [(t, p) for t, p in zip(ts, ps) if t0 < t < t1]
    seq = [(t0, _power_at(ts, ps, t0)), *inner, (t1, _power_at(ts, ps, t1))]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(seq, seq[1:]))


def _mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def phase_summary(record: TelemetryRecord, wins: Sequence[Window]) -> dict[str, Any]:
    """One phase (all its intervals: a phase may be entered more than once) from the record."""
    duration = sum(t1 - t0 for _, t0, t1, _, _ in wins)
    inside = [s for s in record.samples if any(t0 <= s.t_s < t1 for _, t0, t1, _, _ in wins)]
    counter_parts, integrated_parts = [], []
    for _, t0, t1, e0, e1 in wins:
        chain = [(t0, e0), *((s.t_s, s.energy_j) for s in inside if t0 < s.t_s < t1), (t1, e1)]
        counter_parts.append(counter_energy(chain, record.counter_wrap_j))
        integrated_parts.append(integrate_power(record.samples, t0, t1))
    counter_j = sum(counter_parts) if counter_parts and None not in counter_parts else None
    integrated_j = sum(integrated_parts) if integrated_parts and None not in integrated_parts else None
    energy, source = ((counter_j, "counter") if counter_j is not None
                      else (integrated_j, "integrated_power") if integrated_j is not None else (None, None))
    power = [s.power_w for s in inside if s.power_w is not None]
    temps = [s.temperature_c for s in inside if s.temperature_c is not None]
    mem = [s.mem_used_gib for s in inside if s.mem_used_gib is not None]
    known = [s.limits for s in inside if s.limits is not None]
    return {
        "duration_s": duration,
        "energy_j": energy,
        "energy_source": source,
        "counter_j": counter_j,
        "integrated_power_j": integrated_j,
        "mean_power_w": energy / duration if energy is not None and duration > 0 else _mean(power),
        "max_power_w": max(power) if power else None,
        "sm_clock_mhz": _mean([s.sm_clock_mhz for s in inside if s.sm_clock_mhz is not None]),
        "mem_clock_mhz": _mean([s.mem_clock_mhz for s in inside if s.mem_clock_mhz is not None]),
        "temperature_c": _mean(temps),
        "max_temperature_c": max(temps) if temps else None,
        "limit_shares": {k: sum(k in lim for lim in known) / len(known) for k in CLOCK_LIMITS} if known else None,
        "max_mem_used_gib": max(mem) if mem else None,
        "samples": len(inside),
    }


def energy_block(record: TelemetryRecord | None, reason: str | None = None) -> dict[str, Any]:
    """result.json's `energy`: per phase figures, the idle baseline and the counter/power cross-check;
    `{"available": false, "reason": ...}` without a record."""
    if record is None:
        return {"available": False, "reason": reason or "no telemetry"}
    wins = windows(record.marks)
    names = list(dict.fromkeys(w[0] for w in wins))
    phases = {n: phase_summary(record, [w for w in wins if w[0] == n]) for n in names}
    notes = []
    if record.counter_missing is not None:
        notes.append(f"no energy counter ({record.counter_missing}): energy integrated from power sampled every "
                     f"{record.interval_s:g} s")
    else:
        fallback = [n for n, p in phases.items() if p["energy_source"] == "integrated_power"]
        if fallback:
            notes.append(f"energy counter unusable in {', '.join(fallback)} (a reading failed, or it reset): "
                         "energy integrated from sampled power there")
    timed = "inference" if "inference" in phases else None
    cross = None
    if timed and phases[timed]["counter_j"] and phases[timed]["integrated_power_j"] is not None:
        c, i = phases[timed]["counter_j"], phases[timed]["integrated_power_j"]
        cross = {"phase": timed, "counter_j": c, "integrated_power_j": i, "rel_diff": (i - c) / c,
                 "tolerance": CROSS_CHECK_TOLERANCE, "agrees": abs(i - c) / c <= CROSS_CHECK_TOLERANCE}
    sources = {p["energy_source"] for p in phases.values() if p["energy_source"]}
    idle = phases.get(IDLE_PHASE)
    return {
        "available": True,
        "reason": None,
        "source": record.source,
        "energy_source": "counter" if sources == {"counter"} else "integrated_power" if sources else None,
        "note": "; ".join(notes) or None,
        "idle_power_w": idle["mean_power_w"] if idle else None,
        "idle_s": idle["duration_s"] if idle else 0.0,
        "interval_s": record.interval_s,
        "samples": len(record.samples),
        "phases": phases,
        "cross_check": cross,
        "errors": list(record.errors),
    }


def energy_metrics(block: dict[str, Any], val: PassRecord | None, infer: PassRecord | None) -> dict[str, Any]:
    """The energy metrics: e_val_j, e_infer_j (joules of the timed passes), tokens_per_joule_whole (inference
    tokens / e_infer_j), tokens_per_joule_core (inference tokens / (avg_power_w x summed forward time)),
    avg_power_w (the inference pass's mean power), idle_power_w, and mem_infer_gib (the highest device memory in
    use sampled during the inference pass); all null with `energy_reason` when unknown."""
    out: dict[str, Any] = dict.fromkeys(ENERGY_METRICS)
    if not block.get("available"):
        out["energy_reason"] = block.get("reason")
        return out
    phases = block["phases"]
    out["idle_power_w"] = block["idle_power_w"]
    out["e_val_j"] = (phases.get("validation") or {}).get("energy_j") if val is not None else None
    inf = phases.get("inference") or {}
    e, power = inf.get("energy_j"), inf.get("mean_power_w")
    out["e_infer_j"], out["avg_power_w"] = e, power
    # The inference pass's own device-memory peak (sampled): with precision fp8 the run's peak (mem_used_gib) is
    # the fp16 validation pass's, the inference pass holds the fp8 weights.
    out["mem_infer_gib"] = inf.get("max_mem_used_gib")
    if infer is None or not e:
        out["energy_reason"] = "no energy reading for the inference pass"
        return out
    out["tokens_per_joule_whole"] = infer.tokens / e
    out["tokens_per_joule_core"] = infer.tokens / (power * infer.core_s) if power and infer.core_s > 0 else None
    return out
