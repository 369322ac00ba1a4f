"""What a finished run adds to its result and writes next to result.json, and what it prints at the end.

run folder:  result.json  result.md  result.csv  predictions.jsonl  throughput_vs_length.png  run.log
The runner calls `enrich` and `write_run_files`; the CLI calls `after_run` (gate, history, summary).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import accuracy as _accuracy
from . import comparable as _comparable
from . import gate as _gate
from . import history, plots, results
from .errors import EXIT_OK, EXIT_REGRESSION

log = logging.getLogger("benchmarks")

RESULT_FILES = ("result.json", "result.md", "result.csv", "predictions.jsonl", "throughput_vs_length.png", "run.log")
PASS_NAMES = {"val": "validation", "infer": "inference"}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def enrich(result: dict[str, Any], case: Any, samples: Sequence[Any], val: Any, infer: Any) -> None:
    """Add result["accuracy"] (per subject/category, choice-restricted, agreement) and the length bins."""
    result["accuracy"] = _accuracy.detail([s.subject for s in samples], [s.label for s in samples],
                                          {"val": val, "infer": infer}, getattr(case, "categories", None))
    lengths = [len(s.input_ids) for s in samples]
    result["throughput_by_length"] = plots.throughput_by_length(
        lengths, {PASS_NAMES[k]: getattr(rec, "core_s_each", None) for k, rec in (("val", val), ("infer", infer))})


def write_run_files(output_dir: Path, result: Mapping[str, Any]) -> None:
    """result.json, result.md, result.csv (each atomically) and throughput_vs_length.png (skipped with a
    warning if it cannot be drawn)."""
    save_all(output_dir, result)
    data = result.get("throughput_by_length")
    if data and data.get("tokens_per_s"):
        title = f"{result['case']}: {result['environment'].get('device_name', '?')}, {result['precision']}, " \
                f"{result['toolkit']}" + "".join(f", {f}" for f in plots.workload_flags([result]))
        plots.plot_throughput_by_length(output_dir / "throughput_vs_length.png", data, title)


def save_all(output_dir: Path, result: Mapping[str, Any]) -> None:
    """result.json, result.md and result.csv (the files the gate rewrites)."""
    results.write_json(output_dir / "result.json", result)
    results.atomic_write_text(output_dir / "result.md", results.markdown(result))
    history.write_result_csv(output_dir / "result.csv", result)


def markdown_extra(result: Mapping[str, Any]) -> list[str]:
    """result.md lines after the reference table: accuracy by category, then the gate table."""
    lines: list[str] = []
    acc = result.get("accuracy") or {}
    if acc.get("by_category"):
        lines += ["", "| category | subjects | questions | acc infer | acc val | choice acc infer | choice acc val |",
                  "|---|---|---|---|---|---|---|"]
        for name, b in [*acc["by_category"].items(), ("all", {"subjects": len(acc.get("by_subject", {})),
                                                               **acc["overall"]})]:
            lines.append(f"| {name} | {b['subjects']} | {b['questions']} | {_pct(b['infer_acc'])} | "
                         f"{_pct(b['val_acc'])} | {_pct(b['infer_choice_acc'])} | {_pct(b['val_choice_acc'])} |")
    if result.get("gate"):
        lines += ["", "```", _gate.table(result["gate"]), "```"]
    return lines


def check_gate_inputs(baseline_path: Path | None, history_path: Path | None,
                      run_context: Mapping[str, Any], allow_mismatch: bool = False) -> _gate.Baseline | None:
    """Load the baseline and check the history file before the run; a problem is a BenchmarkError (exit 2)."""
    baseline = None
    if baseline_path is not None:
        baseline = _gate.allowing_mismatch(_gate.load_baseline(baseline_path), allow_mismatch)
        _gate.check_workload(baseline, _comparable.workload_of_result(run_context))
        _gate.check_context(baseline, run_context)
    if history_path is not None:
        history.check_history(history_path)
    return baseline


def accuracy_line(result: Mapping[str, Any]) -> str | None:
    """'accuracy by category (infer, whole vocab / letters only): STEM 45.1%/46.0%, ...' or None."""
    cats = (result.get("accuracy") or {}).get("by_category") or {}
    if not cats:
        return None
    return "accuracy by category (infer, whole vocab/letters only): " + ", ".join(
        f"{name} {_pct(b['infer_acc'])}/{_pct(b['infer_choice_acc'])}" for name, b in cats.items())


def after_run(result: dict[str, Any], output_dir: Path, baseline: _gate.Baseline | None,
              history_path: Path | None) -> int:
    """Gate (when a baseline is given), rewrite the result files, append history, print the rest of the
    summary (files, gate table). Returns the exit code: 0, or 1 on a regression."""
    code = EXIT_OK
    if baseline is not None:
        result["gate"] = _gate.compare(result, baseline)
        save_all(output_dir, result)
        code = EXIT_REGRESSION if result["gate"]["status"] != "PASS" else EXIT_OK
    if history_path is not None:
        history.append_history(history_path, result, output_dir)
    line = accuracy_line(result)
    if line:
        print(line)
    files = [output_dir / name for name in RESULT_FILES if (output_dir / name).exists()]
    print("files:\n" + "\n".join(f"  {p}" for p in files) + (f"\nhistory: {history_path}" if history_path else ""))
    if baseline is not None:
        print("\n" + _gate.table(result["gate"]))
    return code
