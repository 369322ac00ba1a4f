"""The human-readable forms of a result: the reference table's row (terminal and result.md), result.md,
and the one-line accuracy by category."""
from __future__ import annotations

from typing import Any, Mapping

from . import gate

TABLE_HEADER = (
    "| toolkit | precision | e2e_time s | p_val_whole | p_val_core | p_infer_whole | *p_infer_core | *MFU "
    "| acc infer/val | mem GiB used/total |\n|---|---|---|---|---|---|---|---|---|---|"
)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


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
    lines += _ranks_table(result)
    lines += _accuracy_table(result)
    if result.get("gate"):
        lines += ["", "```", gate.table(result["gate"]), "```"]
    return "\n".join(lines) + "\n"


def _ranks_table(result: Mapping[str, Any]) -> list[str]:
    """A data-parallel run: one row per rank (its shard, its own throughputs, its memory)."""
    ranks = (result.get("distributed") or {}).get("ranks") or []
    if not ranks:
        return []
    lines = ["", f"data parallel: world_size {result['world_size']} on "
             f"{', '.join(dict.fromkeys(r['host'] for r in ranks))}; system throughput = all tokens / the slowest "
             "rank's time", "",
             "| rank | host | device | questions | tokens | p_val_core | p_infer_core | p_infer_whole | e2e s | mem GiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ranks:
        lines.append(f"| {r['rank']} | {r['host']} | {r['device']} | {r['questions']} | {r['tokens']} | "
                     f"{_fmt(r['p_val_core'], '.1f')} | {_fmt(r['p_infer_core'], '.1f')} | "
                     f"{_fmt(r['p_infer_whole'], '.1f')} | {_fmt(r['e2e_time'], '.0f')} | {_fmt(r['mem_used_gib'], '.1f')} |")
    return lines


def _accuracy_table(result: Mapping[str, Any]) -> list[str]:
    acc = result.get("accuracy") or {}
    if not acc.get("by_category"):
        return []
    lines = ["", "| category | subjects | questions | acc infer | acc val | choice acc infer | choice acc val |",
             "|---|---|---|---|---|---|---|"]
    for name, b in [*acc["by_category"].items(), ("all", {"subjects": len(acc.get("by_subject", {})),
                                                           **acc["overall"]})]:
        lines.append(f"| {name} | {b['subjects']} | {b['questions']} | {pct(b['infer_acc'])} | "
                     f"{pct(b['val_acc'])} | {pct(b['infer_choice_acc'])} | {pct(b['val_choice_acc'])} |")
    return lines


def accuracy_line(result: Mapping[str, Any]) -> str | None:
    """'accuracy by category (infer, whole vocab / letters only): STEM 45.1%/46.0%, ...' or None."""
    cats = (result.get("accuracy") or {}).get("by_category") or {}
    if not cats:
        return None
    return "accuracy by category (infer, whole vocab/letters only): " + ", ".join(
        f"{name} {pct(b['infer_acc'])}/{pct(b['infer_choice_acc'])}" for name, b in cats.items())
