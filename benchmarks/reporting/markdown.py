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
    lines += energy_lines(result)
    lines += _ranks_table(result)
    lines += _accuracy_table(result)
    if result.get("gate"):
        lines += ["", "```", gate.table(result["gate"]), "```"]
    return "\n".join(lines) + "\n"


def energy_line(result: Mapping[str, Any]) -> str:
    """'energy: inference 1234 J (counter), 3.6 tokens/J whole / 3.7 core, 672 W mean (idle 85 W); validation 2000 J'."""
    m, e = result.get("metrics") or {}, result.get("energy") or {}
    if not e.get("available"):
        return f"energy: not measured ({e.get('reason') or m.get('energy_reason') or 'no telemetry'})"
    text = (f"energy: inference {_fmt(m.get('e_infer_j'), ',.0f')} J ({e.get('energy_source') or 'n/a'}), "
            f"{_fmt(m.get('tokens_per_joule_whole'), '.2f')} tokens/J whole / {_fmt(m.get('tokens_per_joule_core'), '.2f')} "
            f"core, {_fmt(m.get('avg_power_w'), '.0f')} W mean (idle {_fmt(m.get('idle_power_w'), '.0f')} W); "
            f"validation {_fmt(m.get('e_val_j'), ',.0f')} J")
    return text


def energy_lines(result: Mapping[str, Any]) -> list[str]:
    """The energy line and, with telemetry, a table per phase (result.md)."""
    lines = ["", energy_line(result)]
    e = result.get("energy") or {}
    if not e.get("available"):
        return lines
    if e.get("note"):
        lines.append(f"note: {e['note']}")
    lines += ["", "| phase | s | energy J | source | mean W | max W | SM MHz | mem MHz | temp C | power cap | thermal "
              "| HW slowdown | samples |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in e["phases"].items():
        shares = p.get("limit_shares") or {}
        lines.append("| " + " | ".join([
            name, _fmt(p["duration_s"], ".1f"), _fmt(p["energy_j"], ",.0f"), p["energy_source"] or "n/a",
            _fmt(p["mean_power_w"], ".0f"), _fmt(p["max_power_w"], ".0f"), _fmt(p["sm_clock_mhz"], ".0f"),
            _fmt(p["mem_clock_mhz"], ".0f"), _fmt(p["temperature_c"], ".0f"),
            *(pct(shares.get(k)) for k in ("power_cap", "thermal", "hw_slowdown")), str(p["samples"])]) + " |")
    c = e.get("cross_check")
    if c:
        lines += ["", f"cross-check ({c['phase']}): counter {c['counter_j']:,.0f} J, integrated sampled power "
                  f"{c['integrated_power_j']:,.0f} J ({100 * c['rel_diff']:+.1f}%, tolerance "
                  f"{100 * c['tolerance']:.0f}%: {'agrees' if c['agrees'] else 'DISAGREES'})"]
    return lines


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
