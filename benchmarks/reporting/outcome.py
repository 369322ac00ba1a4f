"""The end of a run as the user sees it: the gate inputs checked up front, then after the run the
reference table's row, the verdict, the gate, the history row and the list of files.

The writer (reporting.writer) writes the run's own files; the CLI calls `check_gate_inputs` before and
`after_run` after.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from ..errors import EXIT_OK, EXIT_REGRESSION, BenchmarkError, printable
from . import comparable
from . import gate as _gate
from . import history
from .markdown import TABLE_HEADER, accuracy_line, energy_line, table_row
from .writer import RESULT_FILES, RunWriter


def check_gate_inputs(baseline_path: Path | None, history_path: Path | None,
                      run_context: Mapping[str, Any], allow_mismatch: bool = False) -> _gate.Baseline | None:
    """Load the baseline and check the history file before the run; a problem is a BenchmarkError (exit 2)."""
    baseline = None
    if baseline_path is not None:
        baseline = _gate.allowing_mismatch(_gate.load_baseline(baseline_path), allow_mismatch)
        _gate.check_workload(baseline, comparable.workload_of_result(run_context))
        _gate.check_context(baseline, run_context)
    if history_path is not None:
        history.check_history(history_path)
    return baseline


def say(text: str) -> None:
    """stdout, control characters escaped: names and paths from files or the command line reach a terminal."""
    print(printable(text, keep_newlines=True))


def print_table(result: Mapping[str, Any]) -> None:
    """The reference table's row, the verdict with its reasons and notes, and the --repeat spread."""
    say(f"\n{TABLE_HEADER}\n{table_row(result)}\n")
    say(f"verdict: {result['verdict']['status']}" + "".join(f"\n  - {r}" for r in result["verdict"]["reasons"]))
    for note in result["verdict"]["notes"]:
        say(f"  note: {note}")
    if "energy" in result:
        say(energy_line(result))
    for key, s in ((result.get("repeat") or {}).get("spread") or {}).items():
        if s:
            cv = "n/a" if s["cv"] is None else f"{100 * s['cv']:.1f}%"
            say(f"repeat x{result['repeat']['completed']} {key}: median {s['median']:.1f} "
                  f"(min {s['min']:.1f}, max {s['max']:.1f}, CV {cv})")
    if result.get("reference_record"):
        # FlagPerf's collector reads the container's stdout for this line (ast.literal_eval from the first '{'):
        # printed whatever --quiet says, and in run.log
        print(f"Finish Info: {result['reference_record']!r}")


def after_run(writer: RunWriter, baseline: _gate.Baseline | None, history_path: Path | None,
              history_wait_s: float | None = None) -> int:
    """Print the table, gate (when a baseline is given) and rewrite the result files, append history, print
    the rest of the summary (files, gate table). Returns the exit code: 0, or 1 on a regression."""
    result, output_dir = writer.result, writer.output_dir
    print_table(result.as_dict())
    code = EXIT_OK
    if baseline is not None:
        result.gate = _gate.compare(result.as_dict(), baseline, past_nights(history_path))
        writer.save_all()
        code = EXIT_REGRESSION if result.gate["status"] == "REGRESSION" else EXIT_OK
    data = result.as_dict()
    if history_path is not None:
        note = history.append_history(history_path, data, output_dir, history_wait_s)
        if note:
            say(f"note: {note}")
    line = accuracy_line(data)
    if line:
        say(line)
    files = [output_dir / name for name in RESULT_FILES if (output_dir / name).exists()]
    say("files:\n" + "\n".join(f"  {p}" for p in files) + (f"\nhistory: {history_path}" if history_path else ""))
    if baseline is not None:
        say("\n" + _gate.table(result.gate))
        if result.gate["status"] == _gate.NOISY:
            print(f"warning: gate {_gate.NOISY}: noise too high to judge {', '.join(result.gate['noisy'])} "
                  "(exit 0; the gate table's notes say why)", file=sys.stderr)
    return code


def past_nights(history_path: Path | None) -> list[dict[str, Any]]:
    """The rows of --history before this run's, whose spread tells the gate the night-to-night noise; none when
    the file is new or cannot be read (its problems are reported when the row is appended)."""
    if history_path is None or not history_path.is_file():
        return []
    try:
        return history.read_history(history_path)
    except BenchmarkError:
        return []
