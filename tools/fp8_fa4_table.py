#!/usr/bin/env python3
"""The table of tools/fp8_fa4_runs.sh: one row per run folder under OUT (result.json), the figures issue 26 names.

python3 tools/fp8_fa4_table.py OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def row(name: str, r: dict) -> str:
    m, t = r.get("metrics") or {}, r.get("toolkit_report") or {}
    d, cache = t.get("details") or {}, t.get("compile_cache") or {}
    kernel = (r.get("config") or {}).get("packed_attention")

    def f(key: str, fmt: str = ",.0f") -> str:
        v = m.get(key)
        return "n/a" if v is None else format(v, fmt)

    same = m.get("agreement")
    return (f"| {name} | {r.get('precision')} | {kernel} | {r.get('counts', {}).get('questions')} | {f('p_infer_core')} | "
            f"{f('p_infer_pass')} | {f('p_infer_whole')} | {f('mfu', '.1%')} | {f('mfu_executed', '.1%')} | "
            f"{f('tokens_per_joule_whole', '.1f')} | {f('avg_power_w')} | {f('mem_used_gib', '.2f')} | "
            f"{f('mem_infer_gib', '.2f')} | {f('compile_time', '.1f')} | {d.get('compiling_calls_s', 0):.1f} + "
            f"{d.get('warmup_s', 0):.1f} | {cache.get('state')} | {t.get('recompiles')} | "
            f"{'n/a' if same is None else f'{100 * same:.2f}%'} | {(r.get('verdict') or {}).get('status')} |")


def main() -> None:
    out = Path(sys.argv[1])
    print("| run | precision | attention | questions | p_infer_core | p_infer_pass | p_infer_whole | MFU | mfu_executed | "
          "tokens/J | mean W | mem GiB (run) | mem GiB (infer) | compile s | compiling + warm-up s | cache | "
          "recompiles | same as val | verdict |")
    print("|" + "---|" * 19)
    for path in sorted(out.glob("*/result.json")):
        r = json.loads(path.read_text())
        if r.get("status") != "completed":
            print(f"| {path.parent.name} | {r.get('precision')} | | | {r.get('status')}: {r.get('error', '')[:200]} |")
            continue
        print(row(path.parent.name, r))
    for path in sorted(out.glob("*/result.json")):
        r = json.loads(path.read_text())
        for note in (r.get("verdict") or {}).get("notes", []) + (r.get("verdict") or {}).get("reasons", []):
            print(f"{path.parent.name}: {note}")


if __name__ == "__main__":
    main()
