"""One CSV row per run: `result.csv` beside result.json, and the same row appended to a `--history` CSV.

The columns (CSV_COLUMNS) are stable and documented in docs/results_schema.md ("result.csv"); a new column
is only ever appended at the end. A history an older version wrote (its header a prefix of CSV_COLUMNS) is
upgraded on the next append: rewritten with the new header, its rows' new cells empty. Empty cell = null.
Booleans are true/false.
"""
from __future__ import annotations

import csv
import fcntl
import io
import os
import stat
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import BenchmarkError
from . import noise
from .atomic import atomic_write_text


# The gated throughputs whose figure a history row keeps (benchmarks.reporting.noise.night_figure).
FIGURE_METRICS = ("p_val_whole", "p_val_core", "p_infer_whole", "p_infer_core", "mfu")


def _figure(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: noise.night_figure(r, key)


def _m(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: (r.get("metrics") or {}).get(key)


def _env(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: (r.get("environment") or {}).get(key)


def _top(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: r.get(key)


def _acc(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: ((r.get("accuracy") or {}).get("overall") or {}).get(key)


COLUMNS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("schema_version", _top("schema_version")),
    ("start_time", _top("start_time")),
    ("status", _top("status")),
    ("verdict", lambda r: (r.get("verdict") or {}).get("status")),
    ("gate", lambda r: (r.get("gate") or {}).get("status")),
    ("case", _top("case")),
    ("vendor", _top("vendor")),
    ("device_name", _env("device_name")),
    ("device_count", _env("device_count")),
    ("toolkit", _top("toolkit")),
    ("precision", _top("precision")),
    ("tf32", _top("tf32")),
    ("batch_size", _top("batch_size")),
    ("optimizations", lambda r: ";".join(r.get("optimizations") or [])),
    ("smoke", _top("smoke")),
    ("limit", _top("limit")),
    ("synthetic_weights", _top("synthetic_weights")),
    ("questions", lambda r: (r.get("counts") or {}).get("questions")),
    ("tokens", lambda r: (r.get("counts") or {}).get("tokens")),
    ("e2e_time", _m("e2e_time")),
    ("p_val_whole", _m("p_val_whole")),
    ("p_val_core", _m("p_val_core")),
    ("p_infer_whole", _m("p_infer_whole")),
    ("p_infer_core", _m("p_infer_core")),
    ("mfu", _m("mfu")),
    ("peak_flops", lambda r: (r.get("peak_flops") or {}).get("value")),
    ("val_acc", _m("val_acc")),
    ("infer_acc", _m("infer_acc")),
    ("val_choice_acc", _acc("val_choice_acc")),
    ("infer_choice_acc", _acc("infer_choice_acc")),
    ("agreement", _m("agreement")),
    ("mem_used_gib", _m("mem_used_gib")),
    ("mem_total_gib", _m("mem_total_gib")),
    ("compile_time", _m("compile_time")),
    ("torch", _env("torch")),
    ("git_commit", _env("git_commit")),
    ("git_dirty", _env("git_dirty")),
    ("result_dir", lambda r: None),  # filled by the writer: the folder holding result.json
    # schema 3: energy (null without vendor telemetry)
    ("e_val_j", _m("e_val_j")),
    ("e_infer_j", _m("e_infer_j")),
    ("tokens_per_joule_whole", _m("tokens_per_joule_whole")),
    ("tokens_per_joule_core", _m("tokens_per_joule_core")),
    ("avg_power_w", _m("avg_power_w")),
    ("idle_power_w", _m("idle_power_w")),
    ("energy_source", lambda r: (r.get("energy") or {}).get("energy_source")),
    # the scenario (plot's series never mix scenarios), the pass-only throughputs, mfu_executed, world size
    ("scenario", _top("scenario")),
    ("p_val_pass", _m("p_val_pass")),
    ("p_infer_pass", _m("p_infer_pass")),
    ("mfu_executed", _m("mfu_executed")),
    ("world_size", _top("world_size")),
    # failed and interrupted nights are rows too: their one-line error (the status column says which)
    ("error", lambda r: _error_line(r.get("error"))),
    # the night's figure for the gate's noise rule: its --repeat median, corrected for the host's load
    # (benchmarks.reporting.noise), and that load: the share of runnable time its threads waited for a CPU
    *((f"{m}_figure", _figure(m)) for m in FIGURE_METRICS),
    ("host_wait_share", noise.night_wait),
)
ERROR_CHARS = 300  # a history cell holds the error's first line, cut to this length


def _error_line(error: object) -> str | None:
    if not error:
        return None
    text = " ".join(str(error).split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


CSV_COLUMNS: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
# Columns holding numbers (for readers such as `plot`).
_MAX_HEADER_BYTES = 64 * 1024  # the header is ~450 bytes; a "first line" of gigabytes is not a history
NUMERIC_COLUMNS = frozenset({
    "schema_version", "device_count", "batch_size", "limit", "questions", "tokens", "e2e_time", "p_val_whole",
    "p_val_core", "p_infer_whole", "p_infer_core", "mfu", "peak_flops", "val_acc", "infer_acc",
    "val_choice_acc", "infer_choice_acc", "agreement", "mem_used_gib", "mem_total_gib", "compile_time",
    "e_val_j", "e_infer_j", "tokens_per_joule_whole", "tokens_per_joule_core", "avg_power_w", "idle_power_w",
    "p_val_pass", "p_infer_pass", "mfu_executed", "world_size", *(f"{m}_figure" for m in FIGURE_METRICS),
    "host_wait_share",
})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else ""
    return str(value)


def row(result: Mapping[str, Any], result_dir: Path | str | None = None) -> dict[str, str]:
    out = {name: _cell(get(result)) for name, get in COLUMNS}
    out["result_dir"] = "" if result_dir is None else str(result_dir)
    return out


def _csv_text(rows: list[Mapping[str, str]], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_result_csv(path: Path, result: Mapping[str, Any]) -> None:
    """result.csv: the header and one row, written atomically."""
    atomic_write_text(path, _csv_text([row(result, path.parent)], header=True))


def _require_regular(path: Path) -> None:
    """A FIFO would block the run, /dev/zero never ends a line: only a regular file is a history."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BenchmarkError(f"--history {path}: cannot read it ({exc.strerror}); fix the path or permissions") from None
    if stat.S_ISDIR(mode):
        raise BenchmarkError(f"--history {path} is a folder; give a CSV file path")
    if not stat.S_ISREG(mode):
        raise BenchmarkError(f"--history {path}: not a regular file (a device, FIFO or socket); give a CSV file path")


def _header_of(path: Path) -> list[str] | None:
    _require_regular(path)
    try:
        with path.open("rb") as f:
            first = f.readline(_MAX_HEADER_BYTES)
        first_text = first.decode("utf-8")
    except OSError as exc:
        raise BenchmarkError(f"--history {path}: cannot read it ({exc.strerror}); fix the path or permissions") from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"--history {path}: not UTF-8 text, so not a history CSV written by --history; "
                             "start a new history file") from None
    try:
        return next(csv.reader([first_text])) if first_text.strip() else None
    except csv.Error as exc:
        raise BenchmarkError(f"--history {path}: its first line is not CSV ({exc}); start a new history file") from None


def check_history(path: Path) -> None:
    """Fail before the run (exit 2) when the history file cannot take a row."""
    _require_regular(path)
    if path.is_dir():
        raise BenchmarkError(f"--history {path} is a folder; give a CSV file path")
    if not path.parent.is_dir():
        raise BenchmarkError(f"--history {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise BenchmarkError(f"--history {path}: not writable; fix the permissions or choose another file")
    if path.exists():
        header = _header_of(path)
        if header is not None and tuple(header) != CSV_COLUMNS and not _older(header):
            raise BenchmarkError(
                f"--history {path}: its header does not match this version's result.csv columns "
                f"(first difference at column {_first_difference(header)}); start a new history file")


def _older(header: list[str]) -> bool:
    """Written by an older version: its columns are the first ones of this version's."""
    return 0 < len(header) < len(CSV_COLUMNS) and tuple(header) == CSV_COLUMNS[:len(header)]


def _first_difference(header: list[str]) -> str:
    for i, (a, b) in enumerate(zip(header, CSV_COLUMNS)):
        if a != b:
            return f"{i + 1} ('{a}' vs '{b}')"
    return f"{min(len(header), len(CSV_COLUMNS)) + 1} (different column count)"


def append_history(path: Path, result: Mapping[str, Any], result_dir: Path | str | None = None) -> None:
    """Append one row; the header is written when the file is new or empty, an older header upgraded first.
    Locked against concurrent runs: a writer that waited on a file an upgrade replaced opens the new one."""
    check_history(path)
    try:
        for _ in range(100):
            with path.open("a+", encoding="utf-8", newline="") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    if not _still_at(path, f):
                        continue
                    header = _header_of(path)
                    if header is not None and _older(header):
                        _upgrade(path)
                        continue
                    f.seek(0, 2)
                    # A last row without its newline (an editor, a killed writer) would glue ours onto it.
                    glue = "\n" if f.tell() and not _ends_with_newline(path) else ""
                    f.write(glue + _csv_text([row(result, result_dir)], header=f.tell() == 0))
                    f.flush()
                    os.fsync(f.fileno())
                    return
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        raise BenchmarkError(f"--history {path}: replaced by another writer again and again; the run's own "
                             "result.csv has the row")
    except OSError as exc:
        raise BenchmarkError(f"--history {path}: cannot append to it ({exc.strerror}); the run's own "
                             "result.csv has the row") from None


def _still_at(path: Path, f: Any) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), path.stat())
    except FileNotFoundError:
        return False


def _upgrade(path: Path) -> None:
    """Rewrite an older history with this version's header, the new cells of its rows empty (under the lock,
    atomically: a crash leaves the old file whole)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"--history {path}: written by an older version, so it is upgraded, but it is not "
                             f"UTF-8 text at byte {exc.start}; fix or delete the damaged rows (or start a new "
                             "history file); the run's own result.csv has the row") from None
    except csv.Error as exc:
        raise BenchmarkError(f"--history {path}: written by an older version, so it is upgraded, but it is not "
                             f"a valid CSV ({exc}); fix or delete the damaged rows (or start a new history file); "
                             "the run's own result.csv has the row") from None
    width = len(rows[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows[1:]:
        if r:
            w.writerow(r + [""] * (len(CSV_COLUMNS) - width) if len(r) == width else r)
    atomic_write_text(path, buf.getvalue())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of a history (or result.csv) file, numeric columns as floats (None when empty)."""
    if not path.is_file():
        raise BenchmarkError(f"--history {path}: file not found; run with --history {path} first")
    header = _header_of(path)
    if header is None:
        raise BenchmarkError(f"--history {path}: file is empty; it needs the result.csv header and rows")
    missing = [c for c in ("start_time", "p_infer_core") if c not in header]
    if missing:
        raise BenchmarkError(f"--history {path}: column(s) {', '.join(missing)} missing; "
                             "expected a file written by --history (result.csv columns)")
    try:
        return _read_rows(path)
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"--history {path}: not UTF-8 text at byte {exc.start}; fix or delete the damaged "
                             "rows (or start a new history file)") from None
    except csv.Error as exc:
        raise BenchmarkError(f"--history {path}: not a valid CSV ({exc}); fix or delete the damaged rows") from None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for n, raw in enumerate(csv.DictReader(f), start=2):
            if None in raw:
                raise BenchmarkError(f"--history {path} row {n}: more cells than the header's "
                                     f"{len(raw) - 1} columns (rows glued together?); fix or delete that row")
            out: dict[str, Any] = {}
            for key, value in raw.items():
                if key in NUMERIC_COLUMNS:
                    try:
                        out[key] = float(value) if value not in ("", None) else None
                    except ValueError:
                        raise BenchmarkError(f"--history {path} line {n}: column '{key}' = {value!r} is not a "
                                             "number; fix or delete that row") from None
                else:
                    out[key] = value
            rows.append(out)
    return rows
