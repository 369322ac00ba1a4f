"""Subcommands that work on files of earlier runs (nothing is run on a device):

  run_benchmark.py compare-results RESULT.json --baseline FILE      the regression gate, offline
  run_benchmark.py compare-predictions A.jsonl B.jsonl [--field pred_infer] [--out diff.jsonl]
  run_benchmark.py plot --history FILE --out DIR                   throughput / MFU / accuracy over time
  run_benchmark.py history-add --history FILE --run-dir DIR        the row of a night that could not append it

Exit codes as for a run: 0 ok (also a gate NOISY: noise too high to judge), 1 regression (compare-results;
compare-predictions with --min-agreement), 2 bad input or usage.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from ..errors import EXIT_OK, EXIT_REGRESSION, BenchmarkError, printable
from ..guard.safe_io import check_path, shown

PRED_FIELDS = ("pred_infer", "pred_val", "choice_infer", "choice_val")


def say(text: str, err: bool = False) -> None:
    """Print with control characters escaped: names and paths from input files reach a terminal."""
    import sys

    print(printable(text, keep_newlines=True), file=sys.stderr if err else sys.stdout)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # a truncated flag is a typo, not a choice
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        raise BenchmarkError(f"{self.prog}: {message} (see {self.prog} --help)")


# ---------------------------------------------------------------------------------------- compare-results
def compare_results(argv: list[str]) -> int:
    from . import gate

    p = _Parser(prog="run_benchmark.py compare-results",
                description="Compare a finished run's result.json with a baseline (result.json or YAML), "
                            "without running anything. Exit 0 pass, 1 regression, 2 bad input.")
    p.add_argument("result", type=Path, help="result.json of the run to check (or its folder)")
    p.add_argument("--baseline", type=Path, required=True, help="a result.json or a baseline YAML (docs/baselines.md)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare runs of different workloads (device, precision, smoke/--limit, ...) anyway, "
                        "printing the differences")
    p.add_argument("--history", type=Path, default=None, metavar="FILE",
                   help="a --history CSV: the last nights of this workload tell the gate the night-to-night noise")
    args = p.parse_args(argv)
    check_path(args.result, "compare-results")
    check_path(args.baseline, "--baseline")
    result = gate.load_result(args.result, "compare-results")
    past = []
    if args.history is not None:
        from .history import read_history

        # the run itself is left out when it is one of the rows: its own value is no evidence of the noise
        past = [r for r in read_history(args.history) if r.get("start_time") != result.get("start_time")]
    g = gate.compare(result, gate.allowing_mismatch(gate.load_baseline(args.baseline), args.allow_mismatch), past)
    say(gate.table(g))
    return EXIT_REGRESSION if g["status"] == "REGRESSION" else EXIT_OK


# ------------------------------------------------------------------------------------ compare-predictions
def read_predictions(path: Path, field: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(subject, index) -> row of a predictions.jsonl; every problem names the file and line."""
    from ..guard.input_limits import parse_json, read_text

    check_path(path, "compare-predictions")
    if not path.is_file():
        raise BenchmarkError(f"{shown(path)}: file not found; give a predictions.jsonl written by run_benchmark.py")
    text = read_text(path, "compare-predictions")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{shown(path)} line {n}")  # bounded: depth, integer digits
        if not isinstance(row, dict):
            raise BenchmarkError(f"{shown(path)} line {n}: expected a JSON object, got {type(row).__name__}")
        for key in ("subject", "index", field):
            if key not in row:
                raise BenchmarkError(f"{shown(path)} line {n}: key '{key}' missing; expected predictions.jsonl rows")
        if row[field] is None:
            other = "pred_infer" if field != "pred_infer" else "pred_val"
            raise BenchmarkError(f"{shown(path)} line {n}: key '{field}' is null (that pass did not run or record "
                                 f"it); choose another --field, e.g. {other}")
        for key in ("index", field, "label"):
            value = row.get(key)
            if key in row and (value is not None or key != "label") and not _is_int(value):
                raise BenchmarkError(f"{shown(path)} line {n}: key '{key}' is {printable(repr(value))[:80]}; "
                                     "expected an integer (a token id; the index of the question)")
        if not isinstance(row["subject"], str):
            raise BenchmarkError(f"{shown(path)} line {n}: key 'subject' is {printable(repr(row['subject']))[:80]}; "
                                 "expected a subject name")
        key = (row["subject"], row["index"])
        if key in rows:
            raise BenchmarkError(f"{shown(path)} line {n}: question {printable(key[0])} #{key[1]} appears twice")
        rows[key] = row
    if not rows:
        raise BenchmarkError(f"{shown(path)}: no rows; expected a predictions.jsonl of a run")
    return rows


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def agreement_of(a: dict[tuple[str, int], dict[str, Any]], b: dict[tuple[str, int], dict[str, Any]],
                 field: str, a_name: str = "A", b_name: str = "B") -> dict[str, Any]:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        first = (only_a or only_b)[0]
        raise BenchmarkError(
            f"{a_name} and {b_name} cover different questions ({len(only_a)} only in {a_name}, {len(only_b)} only "
            f"in {b_name}, e.g. {printable(first[0])} #{first[1]}); compare runs of the same workload (same "
            "--limit, data)")
    keys = sorted(a)
    differ = [{"subject": k[0], "index": k[1], "label": a[k].get("label"), "a": a[k][field], "b": b[k][field]}
              for k in keys if a[k][field] != b[k][field]]

    def acc(rows: dict[tuple[str, int], dict[str, Any]]) -> float | None:
        if any(r.get("label") is None for r in rows.values()):
            return None
        return sum(r[field] == r["label"] for r in rows.values()) / len(rows)

    from ..measure.metrics import agreement  # one definition of the share (torch-free)

    same = agreement([a[k][field] for k in keys], [b[k][field] for k in keys])[0]
    return {"field": field, "questions": len(keys), "differing": len(differ),
            "agreement": same, "acc_a": acc(a), "acc_b": acc(b),
            "labels_differ": sum(a[k].get("label") != b[k].get("label") for k in keys), "rows": differ}


def compare_predictions(argv: list[str]) -> int:
    from ..guard.safe_write import check_target
    from .atomic import write_jsonl

    p = _Parser(prog="run_benchmark.py compare-predictions",
                description="Agreement of two runs' predictions.jsonl, and the questions where they differ.")
    p.add_argument("a", type=Path, help="predictions.jsonl of run A")
    p.add_argument("b", type=Path, help="predictions.jsonl of run B")
    p.add_argument("--field", choices=PRED_FIELDS, default="pred_infer",
                   help="which prediction to compare (default pred_infer; pred_val: the validation pass; "
                        "choice_*: argmax over the answer letters only)")
    p.add_argument("--out", type=Path, default=None, help="write every differing question to this JSONL file")
    p.add_argument("--show", type=int, default=20, help="differing questions to print (default 20)")
    p.add_argument("--min-agreement", type=float, default=None,
                   help="exit 1 when the agreement is below this fraction (e.g. 0.98)")
    args = p.parse_args(argv)
    if args.min_agreement is not None and not 0 <= args.min_agreement <= 1:
        raise BenchmarkError(f"--min-agreement {args.min_agreement}: expected a fraction between 0 and 1")
    if args.out is not None:  # refused before any work: a device node, FIFO or folder is never replaced
        check_path(args.out, "--out")
        check_target(args.out, "--out")
    r = agreement_of(read_predictions(args.a, args.field), read_predictions(args.b, args.field), args.field,
                     shown(args.a), shown(args.b))
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    say(f"agreement on {r['field']}: {pct(r['agreement'])} ({r['questions'] - r['differing']}/{r['questions']} "
        f"agree, {r['differing']} differ); accuracy A {pct(r['acc_a'])}, B {pct(r['acc_b'])}")
    if r["labels_differ"]:
        say(f"warning: {r['labels_differ']} question(s) have different labels in A and B (another tokenizer?)")
    if r["rows"] and args.show > 0:
        say("differing questions (subject, index, label, A, B):")
        for d in r["rows"][: max(0, args.show)]:
            say(f"  {d['subject']} {d['index']} {d['label']} {d['a']} {d['b']}")
        if len(r["rows"]) > args.show:
            say(f"  ... and {len(r['rows']) - args.show} more" + ("" if args.out else " (--out FILE writes all)"))
    if args.out is not None:
        try:
            write_jsonl(args.out, r["rows"])
        except OSError as exc:
            raise BenchmarkError(f"--out {shown(args.out)}: cannot write it ({exc.strerror})") from None
        say(f"differences: {args.out}")
    if args.min_agreement is not None and r["agreement"] < args.min_agreement:
        say(f"agreement {pct(r['agreement'])} is below --min-agreement {pct(args.min_agreement)}")
        return EXIT_REGRESSION
    return EXIT_OK


# ------------------------------------------------------------------------------------------------- plot
def plot(argv: list[str]) -> int:
    from .history import read_history
    from .plots import plot_history

    p = _Parser(prog="run_benchmark.py plot", description="Charts of a --history CSV: throughput, MFU and "
                "accuracy over time, one PNG each.")
    p.add_argument("--history", type=Path, required=True, help="the CSV written by run_benchmark.py --history")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    p.add_argument("--html", action="store_true",
                   help="also write OUT/report.html: one self-contained page (charts inlined, latest run, every "
                        "run with regressions marked and links to run folders)")
    args = p.parse_args(argv)
    check_path(args.history, "--history")
    check_path(args.out, "--out")
    import os

    from .plots import HISTORY_CHARTS

    written = [name for name, *_ in HISTORY_CHARTS] + (["report.html"] if args.html else [])
    if any(os.path.realpath(args.out / n) == os.path.realpath(args.history) for n in written):
        raise BenchmarkError(f"--history {shown(args.history)} is one of the files plot writes in --out "
                             f"{shown(args.out)}; give another --out")
    warnings: list[str] = []
    rows = read_history(args.history, warnings)
    for line in warnings:
        say(f"warning: {line}", err=True)
    if not rows:
        raise BenchmarkError(f"--history {shown(args.history)}: no runs recorded yet (only the header)")
    charts = plot_history(rows, args.out)
    for path in charts:
        say(str(path))
    if args.html:
        from .html_report import write_html_report

        say(str(write_html_report(rows, charts, args.history, args.out / "report.html")))
    return EXIT_OK


# ------------------------------------------------------------------------------------------- history-add
ENDS = ("failed", "interrupted")


def history_add(argv: list[str]) -> int:
    """The row of a night that did not append its own: a run refused before it started (exit 2) or killed
    without a chance to record its end (SIGKILL, the OOM killer). tools/nightly.sh calls it after every run."""
    import datetime as _dt

    from .history import append_history, read_history

    p = _Parser(prog="run_benchmark.py history-add",
                description="Append the row of a run folder to a --history CSV unless it is there already: "
                            "its result.json whatever its status (a run that never recorded its end gets --status), "
                            "or, without a readable result.json, a row with the status, the error line and the folder.")
    p.add_argument("--history", type=Path, required=True, help="the CSV written by run_benchmark.py --history")
    p.add_argument("--run-dir", type=Path, required=True, help="the run's --output_dir")
    p.add_argument("--status", choices=ENDS, default="failed",
                   help="the status of a run that did not record its end (default: failed)")
    p.add_argument("--error", default=None, help="the one-line error to record (e.g. the run's last stderr line)")
    args = p.parse_args(argv)
    result: dict[str, Any] = {}
    try:
        from ..guard.input_limits import parse_json, read_text

        where = args.run_dir / "result.json"
        loaded = parse_json(read_text(where, "result.json"), f"result.json {shown(where)}")
        result = loaded if isinstance(loaded, dict) else {}
    except (OSError, BenchmarkError):  # none, or unreadable: the row says what the command line says
        pass
    if result.get("status") not in ("completed", *ENDS):  # none, or "running": it never recorded its end
        result = {**result, "status": args.status,
                  "error": args.error or "the run ended without recording its end (killed?)"}
    elif args.error and not result.get("error") and result["status"] != "completed":
        result["error"] = args.error
    result.setdefault("start_time", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if args.history.is_file():
        folder = str(args.run_dir)
        if any(r.get("result_dir") == folder for r in read_history(args.history)):
            print(f"{args.history}: {folder} is recorded already")
            return EXIT_OK
    append_history(args.history, result, args.run_dir)
    print(f"{args.history}: {result['status']} night recorded ({args.run_dir})")
    return EXIT_OK


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "compare-results": compare_results,
    "compare-predictions": compare_predictions,
    "plot": plot,
    "history-add": history_add,
}


def dispatch(argv: list[str]) -> int | None:
    """Run the subcommand named by argv[0]; None when argv is a plain run's flags."""
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return None
