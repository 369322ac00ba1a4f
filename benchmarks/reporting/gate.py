"""Regression gate: compare a run's metrics with a baseline (a result.json or a YAML of expected values).

Throughput and MFU: lower than baseline by more than the relative tolerance is a regression. Accuracy:
lower by more than the absolute tolerance (fraction, 0.01 = 1 point). Memory and times: higher by more than
the relative tolerance. Better-than-baseline never fails. A metric missing on either side is listed as missing,
not gated. Throughputs, MFU and tokens per joule are judged against their noise (benchmarks.reporting.noise):
a drop the noise explains is `noisy`, and the gate's status NOISY (exit 0), not a regression. Runs of another
workload are refused unless allowed (benchmarks.reporting.comparable). Format and defaults: docs/baselines.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..errors import BenchmarkError
from ..guard.input_limits import LimitedLoader, parse_json, read_text
from . import comparable, noise
from . import gate_inputs

REL, ABS = "rel_tol", "abs_tol"
NOISY = "NOISY"  # gate status: no regression found, but a drop the noise does not let the gate judge (exit 0)


@dataclass(frozen=True)
class Kind:
    higher_is_better: bool
    tol_key: str  # REL or ABS: the default tolerance's kind
    default_tol: float


KINDS = {
    "throughput": Kind(True, REL, 0.05),
    "mfu": Kind(True, REL, 0.05),
    "accuracy": Kind(True, ABS, 0.01),
    "memory": Kind(False, REL, 0.10),
    "time": Kind(False, REL, 0.10),
}
METRIC_KIND = {
    "p_val_whole": "throughput", "p_val_core": "throughput", "p_infer_whole": "throughput",
    "p_infer_core": "throughput", "mfu": "mfu",
    "val_acc": "accuracy", "infer_acc": "accuracy", "val_choice_acc": "accuracy",
    "infer_choice_acc": "accuracy", "agreement": "accuracy",
    "mem_used_gib": "memory", "e2e_time": "time", "compile_time": "time",
    # energy efficiency: may not drop more than the throughput tolerance
    "tokens_per_joule_whole": "throughput", "tokens_per_joule_core": "throughput",
    # the passes alone (what schema 1-2 called p_*_whole: gate_inputs converts such a baseline)
    "p_val_pass": "throughput", "p_infer_pass": "throughput",
}
# What a result.json baseline compares (times are too machine-load dependent to gate by default).
DEFAULT_METRICS = ("p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "mfu", "val_acc",
                   "infer_acc", "mem_used_gib")
# Also compared when a result.json baseline measured them (a device with telemetry).
ENERGY_METRICS = ("tokens_per_joule_whole", "tokens_per_joule_core")
# Keys of a YAML baseline that must equal the run's (when present), and purely descriptive keys.
CONTEXT_KEYS = ("case", "precision", "tf32", "toolkit", "vendor")
INFO_KEYS = ("description", "source", "device")


@dataclass(frozen=True)
class Expectation:
    metric: str
    value: float | None  # None: the baseline has no number (e.g. a null MFU); the row is shown, not gated
    tol_key: str
    tol: float
    higher_is_better: bool


@dataclass(frozen=True)
class Baseline:
    path: Path
    kind: str  # "yaml" or "result.json"
    expectations: tuple[Expectation, ...]
    context: Mapping[str, Any]  # yaml: keys that must match; result.json: the baseline run's context
    description: str = ""
    accuracy_meaningful: bool = True  # False for a result.json of a smoke / synthetic-weights run
    workload: Mapping[str, Any] = field(default_factory=dict)  # comparable.WORKLOAD_KEYS it states
    medians: Mapping[str, float] = field(default_factory=dict)  # --repeat medians of a result.json baseline
    allow_mismatch: bool = False  # --allow-mismatch: compare another workload, listing the differences
    device_type: str | None = None  # torch device type of a result.json baseline (cpu: noisy timings)
    result: Mapping[str, Any] | None = None  # a result.json baseline's record: its repeats and host load (noise)
    notes: tuple[str, ...] = ()  # what the gate's notes must say about this baseline (e.g. its schema converted)


def metric_value(result: Mapping[str, Any], metric: str) -> float | None:
    """A metric of a result: metrics[...] first, then the accuracy report's overall block."""
    value = (result.get("metrics") or {}).get(metric)
    if value is None:
        value = ((result.get("accuracy") or {}).get("overall") or {}).get(metric)
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(v: Any) -> float | None:
    """A finite number; also a numeric string, since PyYAML reads `1e9` / `1.0e9` (no sign) as text."""
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _expectation(path: Path, metric: str, spec: Any) -> Expectation:
    where = f"--baseline {path}: key 'metrics.{metric}"
    if metric not in METRIC_KIND:
        raise BenchmarkError(f"{where}': unknown metric; known metrics: {', '.join(METRIC_KIND)}")
    kind = KINDS[METRIC_KIND[metric]]
    if _number(spec) is not None:
        spec = {"value": spec}
    if not isinstance(spec, Mapping):
        raise BenchmarkError(f"{where}': expected a number or a mapping like {{value: 1.0, {kind.tol_key}: "
                             f"{kind.default_tol}}}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"value", REL, ABS})
    if unknown:
        raise BenchmarkError(f"{where}': unknown key(s) {', '.join(map(str, unknown))}; allowed: value, rel_tol, abs_tol")
    if "value" not in spec:
        raise BenchmarkError(f"{where}': missing 'value' (the expected number)")
    value = _number(spec["value"])
    if value is None:
        raise BenchmarkError(f"{where}.value': expected a number, got {spec['value']!r}")
    gate_inputs.check_value(where, metric, value, kind.higher_is_better)
    if REL in spec and ABS in spec:
        raise BenchmarkError(f"{where}': give rel_tol or abs_tol, not both")
    tol_key = REL if REL in spec else ABS if ABS in spec else kind.tol_key
    tol = _number(spec.get(tol_key, kind.default_tol))
    if tol is None or tol < 0:
        raise BenchmarkError(f"{where}.{tol_key}': expected a non-negative number, got {spec.get(tol_key)!r}")
    gate_inputs.check_tolerance(where, tol_key, tol, METRIC_KIND[metric])
    return Expectation(metric, value, tol_key, tol, kind.higher_is_better)


def _default(metric: str, value: Any) -> Expectation:
    kind = KINDS[METRIC_KIND[metric]]
    return Expectation(metric, float(value) if _is_number(value) else None, kind.tol_key, kind.default_tol,
                       kind.higher_is_better)


def load_result(path: Path, what: str = "result") -> dict[str, Any]:
    """A completed run's result.json (or the folder holding it); any problem is a BenchmarkError."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    if not path.is_file():
        raise BenchmarkError(f"{what} {path}: file not found; give a result.json written by run_benchmark.py")
    data = parse_json(read_text(path, what), f"{what} {path}")  # bounded: depth, integer digits
    if not isinstance(data, dict) or "schema_version" not in data:
        raise BenchmarkError(f"{what} {path}: key 'schema_version' missing; expected a result.json of this benchmark")
    if data.get("status") != "completed":
        raise BenchmarkError(f"{what} {path}: key 'status' is {data.get('status')!r}; only a completed run "
                             "can be compared")
    if not isinstance(data.get("metrics"), Mapping):
        raise BenchmarkError(f"{what} {path}: key 'metrics' missing or not a mapping")
    gate_inputs.check_shape(data, f"{what} {path}")
    data = gate_inputs.to_current_schema(data, f"{what} {path}")
    gate_inputs.check_metrics(data, f"{what} {path}", METRIC_KIND)
    return data


def _check_result_metrics(path: Path, result: Mapping[str, Any]) -> None:
    """A result.json baseline must give numbers to compare: a non-finite or non-numeric value is a damaged
    file (results write null, never NaN), and a baseline with no number at all would gate nothing and PASS."""
    for metric in DEFAULT_METRICS:
        value = metric_value(result, metric)
        if value is not None and not _is_number(value):
            raise BenchmarkError(f"--baseline {path}: key 'metrics.{metric}' is {value!r}; expected a finite number "
                                 "or null (the file is damaged: use another baseline run)")
    if all(metric_value(result, m) is None for m in DEFAULT_METRICS):
        raise BenchmarkError(f"--baseline {path}: none of the metrics {', '.join(DEFAULT_METRICS)} has a value, so "
                             "the gate would compare nothing; use a baseline run that measured them")
    gate_inputs.check_not_all_zero(path, {m: metric_value(result, m) for m in DEFAULT_METRICS})


def load_baseline(path: Path) -> Baseline:
    path = Path(path)
    if path.is_dir() and (path / "result.json").is_file():
        path = path / "result.json"
    if not path.is_file():
        raise BenchmarkError(f"--baseline {path}: file not found; give a result.json or a baseline YAML "
                             "(see docs/baselines.md)")
    text = read_text(path, "--baseline")
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        result = load_result(path, "--baseline")
        ctx = {k: result.get(k) for k in CONTEXT_KEYS}
        ctx["device"] = (result.get("environment") or {}).get("device_name")
        _check_result_metrics(path, result)
        energy = tuple(_default(m, metric_value(result, m)) for m in ENERGY_METRICS if metric_value(result, m) is not None)
        energy += tuple(_default(m, metric_value(result, m)) for m in gate_inputs.converted_metrics(result))
        return Baseline(path, "result.json",
                        tuple(_default(m, metric_value(result, m)) for m in DEFAULT_METRICS) + energy, ctx,
                        f"run of {result.get('start_time')} on {ctx['device']}",
                        (result.get("verdict") or {}).get("accuracy_meaningful", True) is not False,
                        comparable.workload_of_result(result), comparable.repeat_medians(result),
                        device_type=comparable.device_type(result), result=result,
                        notes=tuple(gate_inputs.conversion_note(result, "the baseline")))
    try:
        data = yaml.load(text, Loader=LimitedLoader)  # safe, and no alias bomb or deep nesting
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise BenchmarkError(f"--baseline {path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc}); "
                             "see docs/baselines.md for the format") from None
    if not isinstance(data, Mapping):
        raise BenchmarkError(f"--baseline {path}: expected a mapping with a 'metrics' key (see docs/baselines.md)")
    allowed = dict.fromkeys(CONTEXT_KEYS + INFO_KEYS + comparable.WORKLOAD_KEYS)
    unknown = sorted(map(str, set(data) - set(allowed) - {"metrics"}))
    if unknown:
        raise BenchmarkError(f"--baseline {path}: unknown key(s) {', '.join(unknown)}; allowed: metrics, "
                             f"{', '.join(allowed)}")
    gate_inputs.check_yaml_context(path, data)
    metrics = data.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        raise BenchmarkError(f"--baseline {path}: key 'metrics' missing or empty; expected e.g. "
                             "metrics: {p_infer_core: {value: 10052.2, rel_tol: 0.05}}")
    exps = tuple(_expectation(path, str(m), spec) for m, spec in metrics.items())
    return Baseline(path, "yaml", exps, {k: data[k] for k in CONTEXT_KEYS if k in data},
                    str(data.get("description") or ""), workload=comparable.workload_of_yaml(data))


def check_context(baseline: Baseline, run_context: Mapping[str, Any]) -> list[str]:
    """Raise on a mismatch the user must fix; return notes on harmless differences.

    A YAML baseline's context keys must all match. A result.json baseline must be of the same case; other
    differences (precision, toolkit, device...) are reported as notes: comparing them can be the point.
    """
    notes = []
    for key, expected in baseline.context.items():
        if key not in run_context or expected is None or key in baseline.workload:
            continue  # a workload key is checked by check_workload, with all the differences in one line
        now = run_context[key]
        if now == expected:
            continue
        if (baseline.kind == "yaml" or key == "case") and not baseline.allow_mismatch:
            raise BenchmarkError(f"--baseline {baseline.path}: key '{key}' is {expected!r} but this run has "
                                 f"{now!r}; use a baseline made for {key} {now!r}")
        notes.append(f"baseline {key} {expected!r}, this run {now!r}")
    return notes


def check_workload(baseline: Baseline, run_workload: Mapping[str, Any]) -> list[str]:
    """Refuse a baseline of another workload (smoke/--limit vs full, device, precision, ...) unless allowed."""
    return comparable.check(baseline.path, baseline.workload, run_workload, baseline.allow_mismatch)


def allowing_mismatch(baseline: Baseline, allow: bool = True) -> Baseline:
    return replace(baseline, allow_mismatch=allow)


def run_context(result: Mapping[str, Any]) -> dict[str, Any]:
    ctx = {k: result.get(k) for k in CONTEXT_KEYS}
    ctx["device"] = (result.get("environment") or {}).get("device_name")
    return ctx


def _row(e: Expectation, now: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": e.metric, "baseline": e.value, "now": now, "change": None,
                           "change_kind": "rel" if e.tol_key == REL else "abs", "tolerance": e.tol,
                           "direction": "higher_is_better" if e.higher_is_better else "lower_is_better",
                           "missing_in": None, "statistic": "value"}
    if e.value is None or now is None:  # nothing to compare on one side: listed, not a regression
        row["verdict"] = "missing"
        row["missing_in"] = ("baseline and the run" if e.value is None and now is None
                             else "baseline" if e.value is None else "run")
        return row
    if e.tol_key == REL:
        change = (now - e.value) / abs(e.value) if e.value else (0.0 if now == e.value else math.inf)
    else:
        change = now - e.value
    row["change"] = change if math.isfinite(change) else None
    worse = -change if e.higher_is_better else change
    if worse > e.tol + 1e-12:
        row["verdict"] = "REGRESSION"
    elif worse < -e.tol - 1e-12:
        row["verdict"] = "better"
    else:
        row["verdict"] = "ok"
    return row


def compare(result: Mapping[str, Any], baseline: Baseline,
            history: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The gate record stored as result["gate"]: status PASS, REGRESSION or NOISY (a drop that the noise of
    the repeats, of the `history` rows or the host's load does not let it judge; benchmarks.reporting.noise),
    and one row per metric."""
    gate_inputs.check_metrics(result, "this run's result", [e.metric for e in baseline.expectations])
    workload = comparable.workload_of_result(result)
    notes = check_workload(baseline, workload) + list(baseline.notes) + gate_inputs.conversion_note(result, "the run")
    notes += check_context(baseline, run_context(result))
    same_device = not any(d.startswith("key 'device'") for d in comparable.differences(baseline.workload, workload))
    notes += comparable.cpu_notes(baseline.device_type, comparable.device_type(result), same_device)
    run_medians = comparable.repeat_medians(result)
    rows = []
    for e in baseline.expectations:
        if e.metric in baseline.medians and e.metric in run_medians:  # --repeat on both sides: less noise
            rows.append({**_row(replace(e, value=baseline.medians[e.metric]), run_medians[e.metric]),
                         "statistic": "median"})
        else:
            rows.append(_row(e, metric_value(result, e.metric)))
    notes += _judge_noise(rows, baseline, result, history)
    if any(r.get("statistic") == "median" for r in rows):
        notes.append("throughputs compared as --repeat medians (both sides have them)")
    # Random weights answer at random: their accuracy is only comparable with another such run's.
    run_meaningful = (result.get("verdict") or {}).get("accuracy_meaningful", True) is not False
    if baseline.accuracy_meaningful and not run_meaningful:
        skipped = [r for r in rows if METRIC_KIND[r["metric"]] == "accuracy"]
        for r in skipped:
            r["verdict"] = "skipped"
        if skipped:
            notes.append("accuracy not gated: this run's accuracy is not meaningful (smoke or synthetic weights), "
                         "the baseline's is")
    failed = [r["metric"] for r in rows if r["verdict"] == "REGRESSION"]
    missing = [f"{r['metric']} (not in the {r['missing_in']})" for r in rows if r["verdict"] == "missing"]
    noisy = [r["metric"] for r in rows if r["verdict"] == "noisy"]
    notes += [f"noise too high to judge: {noise.why_noisy(r)}" for r in rows if r["verdict"] == "noisy"]
    return {"status": "REGRESSION" if failed else NOISY if noisy else "PASS", "baseline": str(baseline.path),
            "baseline_kind": baseline.kind, "description": baseline.description, "failed": failed,
            "missing": missing, "noisy": noisy, "notes": notes, "rows": rows}


def _judge_noise(rows: list[dict[str, Any]], baseline: Baseline, result: Mapping[str, Any],
                 history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rows of throughputs, MFU and tokens per joule judged against their noise (benchmarks.reporting.noise)."""
    from .history import row as history_row
    from .plots import workload_series

    series, case, notes = workload_series(history_row(result)), result.get("case"), []
    for r in rows:
        r.update(reference="baseline", noise=None, noise_from=[], allowed=None, host_wait=None,
                 measured=None)  # every row the same keys
        kind = KINDS[METRIC_KIND[r["metric"]]]
        if (r["metric"] in noise.JUDGED and kind.higher_is_better and r["change_kind"] == "rel"
                and r["verdict"] in ("ok", "better", "REGRESSION")):
            values = noise.history_figures(history, series, case, r["metric"], workload_series)
            notes += noise.judge(r, r["tolerance"], result, baseline.result, values)
    return notes


# ------------------------------------------------------------------------------------------------ table
def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    kind = METRIC_KIND[metric]
    if kind in ("accuracy", "mfu"):
        return f"{100 * v:.2f}%"
    if kind == "memory":
        return f"{v:.2f} GiB"
    if kind == "time":
        return f"{v:.1f} s"
    return f"{v:.1f}"


def _fmt_change(r: Mapping[str, Any]) -> str:
    if r["change"] is None:
        return "n/a"
    if r["change_kind"] == "rel":
        return f"{100 * r['change']:+.1f}%"
    scale, unit = (100, " pts") if METRIC_KIND[r["metric"]] in ("accuracy", "mfu") else (1, "")
    return f"{scale * r['change']:+.2f}{unit}"


def _fmt_tol(r: Mapping[str, Any]) -> str:
    sign = "-" if r["direction"] == "higher_is_better" else "+"
    allowed = r.get("allowed")
    if r["change_kind"] == "rel" and allowed is not None and allowed > r["tolerance"] + 1e-12:
        sigma = r.get("noise")
        why = f"{noise.Z:g} sigma" if sigma is not None and abs(allowed - noise.Z * sigma) < 1e-9 else "short history"
        return f"{sign}{100 * allowed:.1f}% ({why})"  # widened by the measured noise, or while it is unknown
    if r["change_kind"] == "rel":
        return f"{sign}{100 * r['tolerance']:.1f}%"
    if METRIC_KIND[r["metric"]] in ("accuracy", "mfu"):
        return f"{sign}{100 * r['tolerance']:.2f} pts"
    return f"{sign}{r['tolerance']:g}"


def row_cells(r: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    """One gate row as the table shows it: metric, baseline, now, change, allowed, verdict (rounded, n/a).
    Tolerant of a row another version wrote (the HTML report reads old run folders): what it lacks is n/a."""
    metric = str(r.get("metric"))

    def value(v: Any) -> str:
        if metric in METRIC_KIND and (v is None or _is_number(v)):
            return _fmt(metric, v)
        return "n/a" if v is None else str(v)

    def guarded(fmt: Any) -> str:
        try:
            return fmt(r)
        except (KeyError, TypeError, ValueError):
            return "n/a"

    return (metric, value(r.get("baseline")), value(r.get("now")), guarded(_fmt_change), guarded(_fmt_tol),
            str(r.get("verdict") or "n/a"))


def table(gate: Mapping[str, Any]) -> str:
    """Side-by-side text table: metric, baseline, now, change, allowed, verdict; then the gate status."""
    head = ("metric", "baseline", "now", "change", "allowed", "verdict")
    lines = [head] + [(r["metric"], _fmt(r["metric"], r["baseline"]), _fmt(r["metric"], r["now"]),
                       _fmt_change(r), _fmt_tol(r), r["verdict"]) for r in gate["rows"]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [f"gate vs {gate['baseline']}" + (f" ({gate['description']})" if gate.get("description") else "")]
    for j, line in enumerate(lines):
        out.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                     enumerate(zip(line, widths))).rstrip())
        if j == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    if gate.get("missing"):
        out.append(f"  missing (not gated): {', '.join(gate['missing'])}")
    out += [f"  note: {n}" for n in gate.get("notes", [])]
    named = gate["failed"] or gate.get("noisy") or []
    out.append(f"gate: {gate['status']}" + (f" ({', '.join(named)})" if named else "")
               + (": noise too high to judge, not a regression" if gate["status"] == NOISY else ""))
    return "\n".join(out)
