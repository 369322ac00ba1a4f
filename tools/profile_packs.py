#!/usr/bin/env python3
"""Where the optimized inference pass spends its time, on the case's own model and settings: the compile (torch's
per-phase compile timers, a cold cache) and the top GPU kernels of a few packed forwards (torch.profiler).

Builds the model as a run does (the case, the nvidia YAML and --set overrides, random weights), applies the
active optimizations, compiles with the nvidia inductor toolkit, then profiles the first --packs packs.

GPU: python3 tools/profile_packs.py --data_dir .devdata/data [--set precision=fp8] [--set packed_attention=fa4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import optimizations  # noqa: E402
from benchmarks.config import check_optimizations, load_config  # noqa: E402
from benchmarks.contracts import OptimizationContext  # noqa: E402
from benchmarks.harness.passes import HostBatch, plan_packs, run_pass  # noqa: E402
from benchmarks.registry import get_case, get_toolkit, get_vendor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", type=Path, required=True)
    ap.add_argument("--vendor", default="nvidia")
    ap.add_argument("--limit", type=int, default=3, help="questions per subject")
    ap.add_argument("--packs", type=int, default=6)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    case, vendor = get_case("llama2_7b_mmlu"), get_vendor(args.vendor)
    root = Path(__file__).resolve().parents[1] / "configs"
    cfg = load_config(root, case, args.vendor, vendor.Options,
                      ["synthetic_weights=true", f"compile_cache_dir={tempfile.mkdtemp()}", *args.overrides])
    vendor.configure(cfg.vendor)
    check_optimizations(case.optimizations, cfg, vendor)
    precision = cfg.run.effective_precision
    workload = case.load_workload(cfg.case, args.data_dir, args.limit)
    model = case.build_model(cfg.case, args.data_dir, precision=precision, device=vendor.device(), synthetic=True,
                             seed=0)
    batch = HostBatch([s.input_ids for s in workload.samples], vendor.device())
    active = optimizations.active(case.optimizations, cfg)
    optimizations.apply_all(model, active, OptimizationContext(vendor=vendor, precision=precision,
                                                               longest_prompt=max(batch.lengths)))
    pack = optimizations.pack_tokens(active)
    plan = plan_packs(batch.lengths, pack)
    toolkit = get_toolkit(vendor, cfg.run.compiler, cfg.vendor)
    start = time.perf_counter()
    fn = toolkit.prepare(model, [tuple(batch.lengths[i:j]) for i, j in plan])
    print(f"{precision}, {getattr(cfg.vendor, 'packed_attention', '?')}: compile + warm-up {time.perf_counter() - start:.1f} s "
          f"({len(plan)} packs of {len(workload.samples)} prompts)")
    print(torch._dynamo.utils.compile_times(repr="str", aggregate=True)[:3000])
    sub = plan[: args.packs]
    j = sub[-1][1]
    small = HostBatch([s.input_ids for s in workload.samples[:j]], vendor.device())
    run_pass("warm", fn, small, vendor.synchronize, pack_tokens=pack, plan=sub)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        rec = run_pass("profile", fn, small, vendor.synchronize, pack_tokens=pack, plan=sub)
    print(f"profiled {len(sub)} packs, {rec.tokens} tokens, core {rec.core_s * 1e3:.1f} ms "
          f"= {rec.tokens / rec.core_s:,.0f} tokens/s")
    sort = "cuda_time_total" if vendor.device().type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    main()
