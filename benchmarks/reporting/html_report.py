"""`plot --html`: one self-contained HTML page of a --history file, for a nightly job to publish.

Self-contained on purpose: CI artefact viewers and mail attachments show a single file, often offline, so
the charts are inlined as base64 PNG, the style is inline and there is no script and no network reference.
The page holds the history's charts, the latest night whatever its status (with its gate rows, rounded, when
its result.json is still there; a failed or interrupted night with its error line), and every night, newest
first, regressions, NOISY gates and failed or interrupted nights marked, with a link to its run folder:
relative when the run folders sit beside the report's folder (tools/nightly.sh), so the links work inside a CI
artifact of both; else the machine's file:// URI.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import urllib.parse
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import BenchmarkError
from ..guard.input_limits import parse_json, read_bytes
from .atomic import atomic_write_text
from .gate import row_cells
from .plots import workload_series

RUN_FILES = ("result.json", "result.md", "run.log", "stderr.log")  # linked from the latest run when present

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef; } td.text { text-align: left; }
tr.regression td { background: #fdd; } .badge { color: #fff; background: #c00; padding: 0 0.4em; border-radius: 3px; }
tr.noisy td { background: #fff3cd; } tr.ended td { background: #eee; color: #555; }
.badge.noisy { background: #b58100; } .badge.ended { background: #555; }
img { max-width: 100%; border: 1px solid #ddd; } .note { color: #555; }
"""
# Nothing on the page may run or load: inline style and inlined images only, whatever a history cell holds.
CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
       'style-src \'unsafe-inline\'">')
# (history column, heading, how to show it)
METRIC_COLUMNS = (
    ("p_infer_core", "p_infer_core tokens/s", "num"), ("p_infer_whole", "p_infer_whole tokens/s", "num"),
    ("p_val_core", "p_val_core tokens/s", "num"), ("mfu", "MFU", "pct"), ("infer_acc", "acc infer", "pct"),
    ("val_acc", "acc val", "pct"), ("mem_used_gib", "mem GiB", "num"), ("e2e_time", "e2e s", "num"),
)


def _fmt(value: Any, how: str) -> str:
    if value is None or value == "":
        return "n/a"
    if how == "pct":
        return f"{100 * float(value):.2f}%"
    return f"{float(value):,.1f}"


def _href(path: Path, page_dir: Path | None) -> str:
    """A link that works where the page goes and can only be a file: relative when the run folder sits beside the
    report's folder (tools/nightly.sh's runs/ and report/, also inside a CI artifact of both), else an absolute
    path as a file:// URI, a relative one prefixed with ./; percent-encoded, so text such as `javascript:...` in a
    history cell stays a path."""
    if page_dir is not None and path.is_absolute() and page_dir.is_absolute():
        try:
            path.relative_to(page_dir.parent)
            return urllib.parse.quote(Path(os.path.relpath(path, page_dir)).as_posix(), safe="/")
        except ValueError:
            pass
    if path.is_absolute():
        return path.as_uri()
    return "./" + urllib.parse.quote(str(path), safe="/")


def _link(result_dir: Any, page_dir: Path | None = None, files: Sequence[str] = ()) -> str:
    if not result_dir:
        return ""
    path = Path(str(result_dir))
    out = f'<a href="{html.escape(_href(path, page_dir))}">{html.escape(path.name or str(path))}</a>'
    for name in files:
        if (path / name).is_file():
            out += f' <a href="{html.escape(_href(path / name, page_dir))}">{html.escape(name)}</a>'
    return out


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h3>{html.escape(path.stem)}</h3>\n<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _gate_rows(result_dir: Any) -> list[Mapping[str, Any]]:
    """The gate rows of a run's result.json, when the folder is still there (it may be on another machine)."""
    if not result_dir:
        return []
    try:  # a bounded read that refuses a FIFO or device instead of waiting on it
        where = Path(str(result_dir)) / "result.json"
        result = parse_json(read_bytes(where, "result.json", 64 * 2**20), str(where))
    except (OSError, ValueError, RecursionError, BenchmarkError):
        return []
    return list(((result.get("gate") or {}).get("rows")) or []) if isinstance(result, dict) else []


def _is_regression(row: Mapping[str, Any]) -> bool:
    return str(row.get("gate") or "").upper() == "REGRESSION"


def _ended(row: Mapping[str, Any]) -> bool:
    """A night that did not complete: failed or interrupted (its row has the status and the error line)."""
    return str(row.get("status") or "completed") != "completed"


def _row_class(row: Mapping[str, Any]) -> str:
    if _ended(row):
        return "ended"
    if _is_regression(row):
        return "regression"
    return "noisy" if str(row.get("gate") or "").upper() == "NOISY" else ""


def _badge(row: Mapping[str, Any]) -> str:
    if _ended(row):
        return f'<span class="badge ended">{html.escape(str(row.get("status")).upper())}</span>'
    gate = str(row.get("gate") or "")
    if gate.upper() in ("REGRESSION", "NOISY"):
        cls = "badge noisy" if gate.upper() == "NOISY" else "badge"
        return f'<span class="{cls}">{html.escape(gate.upper())}</span>'
    return html.escape(gate or "n/a")


def _latest(latest: Mapping[str, Any], page_dir: Path | None) -> list[str]:
    """The latest night, whatever its status: a failed or interrupted night shows its error line."""
    out = ["<h2>Latest run</h2>", "<table>"]
    for key, label in (("start_time", "start"), ("status", "status"), ("device_name", "device"),
                       ("precision", "precision"), ("toolkit", "toolkit"), ("verdict", "verdict"), ("gate", "gate")):
        value = html.escape(str(latest.get(key) or "n/a"))
        if key == "gate":
            value = _badge({**latest, "status": "completed"})
        elif key == "status" and _ended(latest):
            value = _badge(latest)
        out.append(f'<tr><th>{label}</th><td class="text">{value}</td></tr>')
    if latest.get("error"):
        out.append(f'<tr><th>error</th><td class="text">{html.escape(str(latest["error"]))}</td></tr>')
    out.append(f'<tr><th>series</th><td class="text">{html.escape(workload_series(latest))}</td></tr>')
    for key, label, how in METRIC_COLUMNS:
        out.append(f"<tr><th>{html.escape(label)}</th><td>{_fmt(latest.get(key), how)}</td></tr>")
    out.append(f'<tr><th>run folder</th><td class="text">'
               f'{_link(latest.get("result_dir"), page_dir, RUN_FILES)}</td></tr>')
    out.append("</table>")
    gate = _gate_rows(latest.get("result_dir"))
    if gate:
        head = ("metric", "baseline", "now", "change", "allowed", "verdict")
        out += ["<h3>Gate</h3>", "<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
        for r in gate:
            cells = row_cells(r)
            verdict = str(r.get("verdict"))
            cls = ' class="regression"' if verdict == "REGRESSION" else ' class="noisy"' if verdict == "noisy" else ""
            text = ' class="text"'
            out.append(f"<tr{cls}>" + "".join(f"<td{text if i in (0, 5) else ''}>{html.escape(c)}</td>"
                                               for i, c in enumerate(cells)) + "</tr>")
        out.append("</table>")
    return out


def _runs(rows: Sequence[Mapping[str, Any]], page_dir: Path | None) -> list[str]:
    head = (["start", "status", "series", "verdict", "gate"] + [label for _, label, _ in METRIC_COLUMNS]
            + ["run folder", "error"])
    out = ["<h2>All runs (newest first)</h2>", "<table>",
           "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        gate = "" if _ended(r) else _badge(r)
        cells = [f'<td class="text">{html.escape(str(r.get("start_time") or ""))}</td>',
                 f'<td class="text">{_badge(r) if _ended(r) else html.escape(str(r.get("status") or "completed"))}</td>',
                 f'<td class="text">{html.escape(workload_series(r))}</td>',
                 f'<td class="text">{html.escape(str(r.get("verdict") or ""))}</td>', f'<td class="text">{gate}</td>']
        cells += [f"<td>{_fmt(r.get(key), how)}</td>" for key, _, how in METRIC_COLUMNS]
        cells.append(f'<td class="text">{_link(r.get("result_dir"), page_dir)}</td>')
        cells.append(f'<td class="text">{html.escape(str(r.get("error") or ""))}</td>')
        cls = _row_class(r)
        out.append((f'<tr class="{cls}">' if cls else "<tr>") + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def render(rows: Sequence[Mapping[str, Any]], charts: Sequence[Path], source: Path,
           page_dir: Path | None = None) -> str:
    """The page; `page_dir` is the folder it is written to (run folders beside it are linked relatively)."""
    ordered = sorted(rows, key=lambda r: str(r.get("start_time") or ""), reverse=True)
    regressions = sum(_is_regression(r) for r in ordered)
    ended = sum(_ended(r) for r in ordered)
    noisy = sum(str(r.get("gate") or "").upper() == "NOISY" for r in ordered)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', CSP,
             "<title>llama-bench history</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>llama-bench history</h1>",
             f'<p class="note">{len(ordered)} run(s) from {html.escape(str(source))}, generated {stamp}; '
             f"{regressions} gated run(s) with a regression, {noisy} whose gate found the noise too high to judge, "
             f"{ended} failed or interrupted.</p>"]
    if ordered:
        parts += _latest(ordered[0], page_dir)
    parts.append("<h2>Charts</h2>")
    parts += [_img(p) for p in charts]
    parts += _runs(ordered, page_dir)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_report(rows: Sequence[Mapping[str, Any]], charts: Sequence[Path], source: Path, path: Path) -> Path:
    try:
        atomic_write_text(path, render(rows, charts, source, path.parent.resolve()))
    except OSError as exc:
        raise BenchmarkError(f"--out {path.parent}: cannot write {path.name} ({exc.strerror}); choose another folder") from None
    return path
