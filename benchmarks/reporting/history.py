"""One CSV row per run: `result.csv` beside result.json, and the same row appended to a `--history` CSV.

The columns (CSV_COLUMNS) are stable and documented in docs/results_schema.md ("result.csv"); a new column
is only ever appended at the end. A history an older version wrote (its header a prefix of CSV_COLUMNS) is
upgraded on the next append: rewritten with the new header, its rows' new cells empty. Empty cell = null.
Booleans are true/false.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import math
import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..guard import input_limits, safe_write
from ..errors import BenchmarkError
from ..guard.safe_write import shown
from . import noise
from .atomic import atomic_write_text

DEFAULT_WAIT_S = 120.0  # the longest a finished run waits for another process's lock (--history_wait_s)


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
        first = input_limits.read_bytes(path, "--history", _MAX_HEADER_BYTES, prefix=True).split(b"\n", 1)[0]
        first_text = first.decode("utf-8")
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
    target = history_target(path)  # a symlink that leads nowhere: refused here, before the run
    if path.is_dir():
        raise BenchmarkError(f"--history {path} is a folder; give a CSV file path")
    if not target.parent.is_dir():
        raise BenchmarkError(f"--history {path}: folder {target.parent} does not exist; create it first")
    if not os.access(target if target.exists() else target.parent, os.W_OK):
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


def history_target(path: Path) -> Path:
    """The file a --history path names: a symlink (to a history shared between jobs) is resolved, so the row is
    appended to the shared file and an upgrade rewrites that file, never a private copy beside the link."""
    if not os.path.islink(path):
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a link to the shared history that does not exist yet: created there
        target = Path(os.path.realpath(path))
        if target.parent.is_dir():
            return target
        raise BenchmarkError(f"--history {shown(path)}: a symlink to {shown(target)}, whose folder does not exist; "
                             "fix the link or give the file") from None
    except (OSError, RuntimeError) as exc:
        raise BenchmarkError(f"--history {shown(path)}: a symlink that does not lead to a file "
                             f"({getattr(exc, 'strerror', None) or exc}); fix the link or give the file") from None


def append_history(path: Path, result: Mapping[str, Any], result_dir: Path | str | None = None,
                   wait_s: float | None = None) -> str | None:
    """Append one row, whole (a full disk leaves the file as it was); the header is written when the file is
    new or empty, an older header upgraded first (in place: writers waiting on the file's lock, of this
    version or the previous one, append to the upgraded file). Waits at most `wait_s` for another process's
    lock. Returns a note when a torn last line (a write cut short) was removed first."""
    check_history(path)
    target = history_target(path)
    try:
        for _ in range(100):
            fd = safe_write.open_fd(target, os.O_RDWR | os.O_APPEND, "--history")
            try:
                _lock(fd, path, DEFAULT_WAIT_S if wait_s is None else wait_s)
                try:
                    if not _same_file(target, fd):
                        continue
                    _finish_upgrade(target)
                    header = _header_of(target)
                    if header is not None and _older(header):
                        _upgrade(target)
                        header = list(CSV_COLUMNS)
                    note = _cut_torn_tail(fd, target, len(header or CSV_COLUMNS))
                    empty = os.fstat(fd).st_size == 0
                    safe_write.append_fd(fd, _csv_text([row(result, result_dir)], header=empty))
                    return note
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        raise BenchmarkError(f"--history {shown(path)}: replaced by another writer again and again; the run's own "
                             "result.csv has the row")
    except OSError as exc:
        raise BenchmarkError(f"--history {shown(path)}: cannot append to it ({exc.strerror}); the run's own "
                             "result.csv has the row") from None


def _lock(fd: int, path: Path, wait_s: float) -> None:
    """The history's exclusive lock, waited for at most `wait_s` (a nightly job must end, whoever holds it)."""
    deadline, nap = time.monotonic() + wait_s, 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise BenchmarkError(f"--history {shown(path)}: another process has held its lock for {wait_s:g} s "
                                 "(--history_wait_s), so the row was not appended; the run's own result.csv has it")
        time.sleep(nap)
        nap = min(nap * 2, 0.25)


def _same_file(path: Path, fd: int) -> bool:
    """The name still leads to the file we locked (another tool may have replaced it meanwhile)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _cut_torn_tail(fd: int, path: Path, width: int) -> str | None:
    """A last line without its newline: a row an editor saved without it (all its cells) gets the newline; a
    row cut short by a crash (fewer cells) is removed, so no half row ever reads as a run. A note or None."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    tail = os.pread(fd, min(size, _MAX_HEADER_BYTES), max(0, size - _MAX_HEADER_BYTES))
    start = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    fragment = tail[tail.rfind(b"\n") + 1:]
    try:
        cells = next(csv.reader([fragment.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        cells = []
    if start == 0 or len(cells) >= width:  # a header, or a whole row, without its newline
        safe_write.append_fd(fd, "\n")
        return None
    safe_write.truncate_fd(fd, start)
    return (f"--history {shown(path)}: removed a torn last line ({len(fragment)} bytes, {len(cells)} of {width} "
            "cells, no newline: a write that did not finish) before appending")


def _upgrade_copy(path: Path) -> Path:
    return path.with_name(f".{path.name}.upgrade")


def _upgrade(path: Path) -> None:
    """Rewrite an older history with this version's header, the new cells of its rows empty, under the lock and
    in place (same file: a writer already waiting on its lock appends to the upgraded file). The new text is
    first written whole beside it, so a crash in the middle is completed by the next append."""
    try:
        text = input_limits.read_bytes(path, "--history").decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
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
    copy = _upgrade_copy(path)
    safe_write.write_text(copy, buf.getvalue(), "--history upgrade copy")
    safe_write.rewrite_in_place(path, buf.getvalue().encode("utf-8"))
    safe_write.remove(copy)


def _finish_upgrade(path: Path) -> None:
    """An upgrade that a crash cut short left its whole text beside the history: put it in place."""
    copy = _upgrade_copy(path)
    if not os.path.isfile(copy) or os.path.islink(copy):
        return
    safe_write.rewrite_in_place(path, input_limits.read_bytes(copy, "--history upgrade copy"))
    safe_write.remove(copy)


def read_history(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a history (or result.csv) file, numeric columns as floats (None when empty). A torn last line
    (no newline, fewer cells than the header: a write cut short) is skipped, with a warning added to
    `warnings`; a number that is not finite (nan, inf: never written by this benchmark) is refused."""
    if not path.is_file():
        raise BenchmarkError(f"--history {shown(path)}: file not found; run with --history {shown(path)} first")
    header = _header_of(path)
    if header is None:
        raise BenchmarkError(f"--history {shown(path)}: file is empty; it needs the result.csv header and rows")
    missing = [c for c in ("start_time", "p_infer_core") if c not in header]
    if missing:
        raise BenchmarkError(f"--history {shown(path)}: column(s) {', '.join(missing)} missing; "
                             "expected a file written by --history (result.csv columns)")
    raw = input_limits.read_bytes(path, "--history")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"--history {shown(path)}: not UTF-8 text at byte {exc.start}; fix or delete the "
                             "damaged rows (or start a new history file)") from None
    try:
        return _read_rows(path, text, warnings)
    except csv.Error as exc:
        raise BenchmarkError(f"--history {shown(path)}: not a valid CSV ({exc}); fix or delete the damaged "
                             "rows") from None


def _read_rows(path: Path, text: str, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    text = _without_torn_tail(path, text, warnings)
    rows = []
    for n, raw in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
        if None in raw:
            raise BenchmarkError(f"--history {shown(path)} row {n}: more cells than the header's "
                                 f"{len(raw) - 1} columns (rows glued together?); fix or delete that row")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key in NUMERIC_COLUMNS:
                out[key] = _number(path, n, key, value)
            else:
                out[key] = value
        rows.append(out)
    return rows


def _without_torn_tail(path: Path, text: str, warnings: list[str] | None) -> str:
    """`text` without a torn last line: no newline and fewer cells than the header (a write cut short by a
    crash or a full disk). A last row with all its cells (an editor dropped the newline) is kept."""
    if text.endswith("\n") or "\n" not in text:
        return text
    head, fragment = text.rsplit("\n", 1)
    width = len(next(csv.reader([text.split("\n", 1)[0]]), []))
    cells = len(next(csv.reader([fragment]), []))
    if cells >= width:
        return text
    if warnings is not None:
        warnings.append(f"--history {shown(path)} line {head.count(chr(10)) + 2}: skipped a torn last line "
                        f"({cells} of {width} cells, no newline: a write that did not finish)")
    return head + "\n"


def _number(path: Path, n: int, key: str, value: Any) -> float | None:
    if value in ("", None):
        return None
    try:
        number = float(value)
    except ValueError:
        raise BenchmarkError(f"--history {shown(path)} line {n}: column '{key}' = {value!r} is not a "
                             "number; fix or delete that row") from None
    if not math.isfinite(number):
        raise BenchmarkError(f"--history {shown(path)} line {n}: column '{key}' = {value!r} is not a finite "
                             "number (this benchmark writes an empty cell for none); fix or delete that row")
    return number
