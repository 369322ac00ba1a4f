"""Result files: result.json (versioned), result.md (the reference table's row), predictions.jsonl.

Every file is written atomically (temp file in the same folder, then rename), so a crash never leaves a
half-written result behind.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from .safe_io import report_mode

# The result.json schema (docs/results_schema.md). 2: adds accuracy, throughput_by_length, gate,
# environment.git_commit/git_dirty, and environment.device_count/driver/cuda always present (null if unknown).
SCHEMA_VERSION = 2

TABLE_HEADER = (
    "| toolkit | precision | e2e_time s | p_val_whole | p_val_core | p_infer_whole | *p_infer_core | *MFU "
    "| acc infer/val | mem GiB used/total |\n|---|---|---|---|---|---|---|---|---|---|"
)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, report_mode())  # mkstemp makes 0600; a report is readable like any file the user writes
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(_clean(r)) + "\n" for r in rows))


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + suffix


def table_row(result: Mapping[str, Any]) -> str:
    m = result["metrics"]
    mfu = _fmt(None if m["mfu"] is None else 100 * m["mfu"], ".1f", "%")
    acc = "/".join(_fmt(None if m[k] is None else 100 * m[k], ".1f", "%") for k in ("infer_acc", "val_acc"))
    mem = f"{_fmt(m['mem_used_gib'], '.1f')}/{_fmt(m['mem_total_gib'], '.1f')}"
    cells = [
        result["toolkit"],
        result["precision"] + ("+tf32" if result["precision"] == "fp32" and result["tf32"] else ""),
        _fmt(m["e2e_time"], ".0f"),
        _fmt(m["p_val_whole"], ".1f"),
        _fmt(m["p_val_core"], ".1f"),
        _fmt(m["p_infer_whole"], ".1f"),
        _fmt(m["p_infer_core"], ".1f"),
        mfu,
        acc,
        mem,
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(result: Mapping[str, Any]) -> str:
    lines = [f"# {result['case']} on {result['environment'].get('device_name', '?')} ({result['vendor']})", "",
             TABLE_HEADER, table_row(result), "",
             f"verdict: {result['verdict']['status']}"]
    lines += [f"- {r}" for r in result["verdict"]["reasons"]]
    m = result["metrics"]
    lines += ["", f"compile_time: {_fmt(m['compile_time'], '.1f')} s; questions: {result['counts']['questions']}; "
              f"tokens: {result['counts']['tokens']}"]
    if m["mfu"] is None:
        lines.append(f"MFU not reported: {m['mfu_reason']}")
    from .outputs import markdown_extra  # accuracy by category and the gate table, when present

    lines += markdown_extra(result)
    return "\n".join(lines) + "\n"
