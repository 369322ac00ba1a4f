"""Which runs the gate may compare: the same workload (case, device, precision, scenario, world size,
smoke or not, --limit), and the figures it compares (--repeat medians when both sides have them).

A throughput measured on a smoke model, on 2 questions per subject or on another card says nothing about a
regression of the full run, so the gate refuses such a pair (exit 2) unless --allow-mismatch is given.
Fields older results lack take the value they had before the field existed: scenario "optimized" (the
vendor's toolkit pass), world size 1.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import BenchmarkError

# The workload keys, in the order the message lists them; a YAML baseline may state any of them.
WORKLOAD_KEYS = ("case", "device", "precision", "scenario", "world_size", "smoke", "limit")
ABSENT = {"scenario": "optimized", "world_size": 1}
CPU_NOISE = ("CPU baseline: CPU timings are noisy (other processes, frequency scaling, thread placement); "
             "prefer --repeat N on both sides, whose medians the gate then compares")


def workload_of_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The workload of a result.json (or of a run about to start, given the same keys)."""
    env = result.get("environment") or {}
    return {
        "case": result.get("case"),
        "device": result.get("device", env.get("device_name")),
        "precision": result.get("precision"),
        "scenario": result.get("scenario") or ABSENT["scenario"],
        "world_size": result.get("world_size") or ABSENT["world_size"],
        "smoke": bool(result.get("smoke")),
        "limit": result.get("limit"),
    }


def workload_of_yaml(data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys a YAML baseline states; those it leaves out are not checked."""
    return {k: data[k] for k in WORKLOAD_KEYS if k in data}


def _norm_device(name: Any) -> str:
    return " ".join(str(name).lower().split())


def _same(key: str, baseline: Any, run: Any) -> bool:
    if key == "device":
        if baseline is None or run is None:
            return baseline == run
        # "A100-SXM4-40GB" in a YAML names the card torch reports with its maker, "NVIDIA A100-SXM4-40GB"
        a, b = _norm_device(baseline), _norm_device(run)
        return a == b or (bool(a) and a in b) or (bool(b) and b in a)
    return baseline == run


def _phrase(key: str, baseline: Any, run: Any) -> str:
    if key == "smoke":
        return f"key 'smoke' is {str(bool(baseline)).lower()} but this run is {'' if run else 'not '}a smoke run"
    if key == "limit":
        b = "null (the full workload)" if baseline is None else repr(baseline)
        return f"key 'limit' is {b} but this run has " + ("no --limit" if run is None else f"--limit {run}")
    return f"key '{key}' is {baseline!r} but this run has {run!r}"


def differences(baseline: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """One phrase per workload key whose values differ; keys the baseline does not state are skipped."""
    return [_phrase(key, baseline[key], run[key]) for key in WORKLOAD_KEYS
            if key in baseline and key in run and not _same(key, baseline[key], run[key])]


def check(path: Any, baseline: Mapping[str, Any], run: Mapping[str, Any], allow_mismatch: bool) -> list[str]:
    """Raise when the workloads differ and --allow-mismatch is not given; else return the differences as notes."""
    diffs = differences(baseline, run)
    if diffs and not allow_mismatch:
        raise BenchmarkError(f"--baseline {path}: not comparable with this run: {'; '.join(diffs)}; use a baseline "
                             "of the same workload, or add --allow-mismatch to compare anyway")
    return [f"not comparable (compared anyway, --allow-mismatch): {d}" for d in diffs]


def repeat_medians(result: Mapping[str, Any]) -> dict[str, float]:
    """metric -> median of a --repeat run (result.json repeat.spread.<metric>.median); {} without --repeat."""
    spread = (result.get("repeat") or {}).get("spread") or {}
    out = {}
    for metric, s in spread.items():
        median = (s or {}).get("median")
        if isinstance(median, (int, float)) and not isinstance(median, bool):
            out[metric] = float(median)
    return out


HOST = "cpu"  # torch's device.type of the host


def device_type(result: Mapping[str, Any]) -> Any:
    return (result.get("environment") or {}).get("device_type")


def cpu_notes(baseline_type: Any, run_type: Any, same_device: bool) -> list[str]:
    """The noise warning for a baseline measured on the host CPU (its device type); a YAML baseline records
    none: then a CPU run on the baseline's device."""
    on_host = baseline_type == HOST or (baseline_type is None and run_type == HOST and same_device)
    return [CPU_NOISE] if on_host else []
