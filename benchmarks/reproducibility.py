"""Proving two results measure the same thing (config hash + data fingerprint), and the spread of --repeat.

`config_sha256` hashes the canonical JSON of the merged config (every key, `--set` overrides included), so
two results with the same hash ran the same settings; `result["fingerprint"]` (MMLU CSV bytes, the weights'
config/index) says they read the same data. `same_measurement` compares both plus what the command line
changes outside the config (--limit, --smoke).

`--repeat N` runs the timed validation and inference passes N times on the model that was built (and
compiled) once; `summarize` reports each throughput's values and their min/median/max/CV. The reported
metrics stay those of the first run, the one the reference measures.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from typing import Any, Mapping, Sequence

THROUGHPUTS = ("p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core")
REPEAT_DESIGN = ("the validation and inference passes are repeated on the model built and compiled once; "
                 "init and compile are not repeated; metrics are those of run 1")


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept; values JSON cannot hold are written as their str()."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_sha256(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def same_measurement(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between two result.json dicts in what they measure; [] means the same measurement."""
    diffs = []
    for key in ("case", "config_sha256", "limit", "smoke"):
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)!r} != {b.get(key)!r}")
    fa, fb = a.get("fingerprint") or {}, b.get("fingerprint") or {}
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            diffs.append(f"fingerprint.{key}: {fa.get(key)!r} != {fb.get(key)!r}")
    if not fa or not fb:
        diffs.append("fingerprint missing (the run stopped before loading the data)")
    return diffs


def spread(values: Sequence[float | None]) -> dict[str, float | None] | None:
    """min/median/max/mean and CV (sample standard deviation / mean) of the values; None when there are none."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean else None
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "mean": mean, "cv": cv}


def summarize(runs: Sequence[Mapping[str, Any]], requested: int) -> dict[str, Any]:
    """The `repeat` block of result.json from per-run dicts (throughputs, nonfinite counts, agreement)."""
    return {
        "requested": requested,
        "completed": len(runs),
        "design": REPEAT_DESIGN,
        "runs": [dict(r) for r in runs],
        "spread": {key: spread([r.get(key) for r in runs]) for key in THROUGHPUTS},
    }
