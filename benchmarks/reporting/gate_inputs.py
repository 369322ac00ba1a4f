"""What the gate refuses because it cannot compare it (docs/baselines.md, "Refused"): each check raises a
one-line BenchmarkError naming the file and key, and says the fix.

* a result.json (the run or a baseline) whose shape is not this benchmark's: `metrics`, `verdict`,
  `environment`, ... not mappings, a gated metric that is a string or not finite (a NaN run never PASSes);
* another schema_version: an older result (1, 2: `p_*_whole` was the pass alone, what schema 3 calls
  `p_*_pass`) is converted, its figures compared under their current names; a newer one is refused;
* a baseline that gates nothing: every metric null or zero;
* numbers in the wrong unit: a relative tolerance above 1 (`rel_tol: 5` meant 5%), an accuracy tolerance
  above 1, a memory figure above MAX_MEMORY_GIB (MiB given as GiB).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from ..errors import BenchmarkError, printable

CURRENT_SCHEMA = 3  # reporting.record.SCHEMA_VERSION (not imported: this module stays import-light)
# Schema 1 and 2: p_*_whole was the pass's own wall time, what schema 3 calls p_*_pass.
RENAMED_BEFORE_3 = {"p_val_whole": "p_val_pass", "p_infer_whole": "p_infer_pass"}
MAX_MEMORY_GIB = 1024.0  # no device or run of this case uses a TiB; 15872 "GiB" is 15.5 GiB written in MiB
MAPPINGS = ("metrics", "verdict", "environment", "accuracy", "repeat", "gate", "fingerprint", "peak_flops")
STRINGS = ("case", "precision", "scenario", "vendor", "toolkit", "status")


def _show(value: Any) -> str:
    return printable(repr(value))[:80]


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_shape(data: Mapping[str, Any], where: str) -> None:
    """The keys the gate reads have this benchmark's types (a hand-edited or foreign file is named, not a
    traceback)."""
    for key in MAPPINGS:
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise BenchmarkError(f"{where}: key '{key}' is {_show(data[key])}; expected a mapping (a result.json "
                                 "written by run_benchmark.py)")
    for key in STRINGS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise BenchmarkError(f"{where}: key '{key}' is {_show(data[key])}; expected a string")
    overall = (data.get("accuracy") or {}).get("overall")
    if overall is not None and not isinstance(overall, Mapping):
        raise BenchmarkError(f"{where}: key 'accuracy.overall' is {_show(overall)}; expected a mapping")
    spread = (data.get("repeat") or {}).get("spread")
    if spread is not None and not (isinstance(spread, Mapping) and all(v is None or isinstance(v, Mapping)
                                                                      for v in spread.values())):
        raise BenchmarkError(f"{where}: key 'repeat.spread' is {_show(spread)}; expected a mapping of metric -> "
                             "{min, median, max, ...}")
    verdict = data.get("verdict") or {}
    if verdict.get("status") is not None and not isinstance(verdict["status"], str):
        raise BenchmarkError(f"{where}: key 'verdict.status' is {_show(verdict['status'])}; expected a string")
    if not isinstance(verdict.get("accuracy_meaningful", True), bool):
        raise BenchmarkError(f"{where}: key 'verdict.accuracy_meaningful' is "
                             f"{_show(verdict['accuracy_meaningful'])}; expected true or false")
    for key, ok in (("world_size", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                    ("limit", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                    ("smoke", lambda v: isinstance(v, bool))):
        if data.get(key) is not None and not ok(data[key]):
            raise BenchmarkError(f"{where}: key '{key}' is {_show(data[key])}; expected what run_benchmark.py "
                                 "writes there")


def check_metrics(data: Mapping[str, Any], where: str, metrics: Iterable[str]) -> None:
    """Each metric the gate reads is a finite number or null (results write null, never NaN or text)."""
    for metric in metrics:
        for block in ("metrics", "accuracy.overall"):
            source = data.get("metrics") if block == "metrics" else (data.get("accuracy") or {}).get("overall")
            value = (source or {}).get(metric) if isinstance(source, Mapping) else None
            if value is not None and not is_number(value):
                raise BenchmarkError(f"{where}: key '{block}.{metric}' is {_show(value)}; expected a finite number "
                                     "or null: a metric that is not a number can neither pass nor fail the gate")
        check_memory(where, metric, (data.get("metrics") or {}).get(metric))


def to_current_schema(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The result as schema 3 names its figures; an older one converted (recorded under
    `schema_converted_from`), a newer or unknown one refused."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BenchmarkError(f"{where}: key 'schema_version' is {_show(version)}; expected a positive integer")
    if version > CURRENT_SCHEMA:
        raise BenchmarkError(f"{where}: schema_version {version} is newer than this benchmark's "
                             f"{CURRENT_SCHEMA}; compare it with the version that wrote it (or upgrade)")
    if version == CURRENT_SCHEMA:
        return data
    out = dict(data)
    metrics = dict(data.get("metrics") or {})
    for old, new in RENAMED_BEFORE_3.items():
        if old in metrics:
            metrics.setdefault(new, metrics[old])
            metrics[old] = None  # its meaning changed: never compared with a schema-3 p_*_whole
    out["metrics"] = metrics
    repeat = data.get("repeat")
    if isinstance(repeat, Mapping) and isinstance(repeat.get("spread"), Mapping):
        spread = {RENAMED_BEFORE_3.get(k, k): v for k, v in repeat["spread"].items()}
        out["repeat"] = {**repeat, "spread": spread}
    out["schema_converted_from"] = version
    return out


def conversion_note(data: Mapping[str, Any], side: str) -> list[str]:
    version = data.get("schema_converted_from")
    if version is None:
        return []
    return [f"{side} has schema_version {version}, whose p_val_whole/p_infer_whole were the pass alone: compared as "
            "p_val_pass/p_infer_pass, its p_*_whole not compared"]


def converted_metrics(data: Mapping[str, Any]) -> list[str]:
    """The renamed figures a converted result.json baseline gates (p_*_pass), those it has."""
    if data.get("schema_converted_from") is None:
        return []
    return [new for new in RENAMED_BEFORE_3.values() if (data.get("metrics") or {}).get(new) is not None]


def check_not_all_zero(path: Any, values: Mapping[str, Any]) -> None:
    """A baseline whose every metric is null or zero would gate nothing (any run is at least 0)."""
    if values and all(v is None or v == 0 for v in values.values()):
        raise BenchmarkError(f"--baseline {printable(str(path))}: every metric ({', '.join(values)}) is null or zero, "
                             "so the gate would compare nothing; use a baseline run that measured them")


def check_tolerance(where: str, tol_key: str, tol: float, kind: str) -> None:
    """Tolerances are fractions: rel_tol 0.05 is 5%, an accuracy abs_tol 0.01 is 1 point."""
    if tol_key == "rel_tol" and tol > 1:
        raise BenchmarkError(f"{where}.rel_tol': {tol:g} is a fraction of the baseline (1 = 100%); for {tol:g}% "
                             f"write rel_tol: {tol / 100:g}")
    if tol_key == "abs_tol" and kind in ("accuracy", "mfu") and tol > 1:
        raise BenchmarkError(f"{where}.abs_tol': {tol:g} is a fraction ({kind} 0.01 = 1 point); for {tol:g} "
                             f"points write abs_tol: {tol / 100:g}")


def check_memory(where: str, metric: str, value: Any) -> None:
    if metric.endswith("_gib") and is_number(value) and value > MAX_MEMORY_GIB:
        raise BenchmarkError(f"{where}: key 'metrics.{metric}' is {value:g} GiB, more than {MAX_MEMORY_GIB:g}: "
                             f"probably MiB ({value:g} MiB = {value / 1024:.2f} GiB); give GiB (MiB / 1024)")


def check_value(where: str, metric: str, value: float, higher_is_better: bool) -> None:
    """A YAML expectation: GiB not MiB, and a positive target for what must not drop (0 gates nothing)."""
    check_memory(where.split(": key")[0], metric, value)
    if higher_is_better and value <= 0 and not metric.endswith("acc") and metric != "agreement":
        raise BenchmarkError(f"{where}.value': {value:g}; a {metric} baseline must be positive (every run is at "
                             "least 0, so it would gate nothing)")


def check_yaml_context(path: Any, data: Mapping[str, Any]) -> None:
    """The workload and context keys of a YAML baseline have the types a result has: `smoke: "no"` (a string)
    must not read as true, `limit: "2"` never equals a run's 2."""
    kinds = {"smoke": (bool,), "limit": (int, type(None)), "world_size": (int,), "tf32": (bool,)}
    for key, value in data.items():
        if key == "metrics":
            continue
        want = kinds.get(key, (str, type(None)))
        if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
            names = " or ".join("null" if t is type(None) else {bool: "true/false", int: "an integer",
                                                                 str: "a string"}[t] for t in want)
            raise BenchmarkError(f"--baseline {printable(str(path))}: key '{key}' is {_show(value)}; expected {names}")
