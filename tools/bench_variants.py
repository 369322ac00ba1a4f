#!/usr/bin/env python3
"""Side-by-side speed of inference variants on one card, through the harness's own code paths.

Builds the case's model (synthetic weights unless the weight dir has real ones), tokenizes the real MMLU
prompts, samples N of them (seeded), and runs each variant's pass with the harness's `run_pass`, printing
one table: compile/warm-up seconds, core and whole tokens/s, MFU, agreement with the first variant's
predictions, peak memory. Variants, comma-separated, run in order in one process:

  eager                     the plain model (first use of each length if it comes first)
  eager+warm                the plain model after one forward at the longest length
  eager+pack:N[:FLAGS]      the plain model, prompts packed into forwards of <= N tokens (pack_tokens)
  compile:MODE:DYN:PAD[:N[:FLAGS]]
                            inductor with dynamo_mode MODE (default, reduce-overhead, max-autotune-no-cudagraphs),
                            dynamic DYN (dyn|static), pad_multiple PAD (0 = off), pack_tokens N (default 0)
  FLAGS, joined by '+':     fuse: fuse_projections (in place, so fused variants must come after unfused compiled
                            ones); prune: prune_last_layer; nocap: packed attention bounded by the pack's length,
                            not the longest prompt's (as before the bound existed); cudnn: packed_attention
                            cudnn (cuDNN's ragged SDPA instead of flash attention; fp16/bf16 on CUDA)

Example (GPU): python tools/bench_variants.py --data_dir .devdata/data --n 300 \
    --variants eager,eager,compile:default:dyn:0,compile:reduce-overhead:dyn:64
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.measure.metrics import agreement  # noqa: E402
from benchmarks.config import fields_of, parse_set  # noqa: E402
from benchmarks.llama2_7b_mmlu import CASE  # noqa: E402
from benchmarks.harness.passes import HostBatch, plan_packs, run_pass  # noqa: E402
from benchmarks.registry import default_vendor, get_vendor  # noqa: E402
from benchmarks.harness.toolkits import padded_length  # noqa: E402
from vendors.nvidia.ragged import select  # noqa: E402


FLAGS = ("fuse", "prune", "nocap", "cudnn")


def _flags(rest: list[str]) -> dict:
    flags = rest[0].split("+") if rest else []
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        sys.exit(f"unknown variant flag(s) {', '.join(unknown)}; expected some of {', '.join(FLAGS)} joined by '+'")
    return {f: f in flags for f in FLAGS}


def parse_variant(spec: str) -> dict:
    if spec in ("eager", "eager+warm"):
        return {"kind": spec, "pack": 0, **_flags([])}
    if spec.startswith("eager+pack:"):
        _, n, *rest = spec.split(":")
        return {"kind": "eager", "pack": int(n), **_flags(rest)}
    _, mode, dyn, pad, *rest = spec.split(":")
    return {"kind": "compile", "mode": mode, "dynamic": dyn == "dyn", "pad": int(pad),
            "pack": int(rest[0]) if rest else 0, **_flags(rest[1:])}


# Kernel name fragments -> the groups docs/results/README.md reports (first match wins). Inductor names a Triton
# kernel after the ops it feeds, so "attention_forward" in one is the rotary/layout kernel before attention;
# flash's own kernel is "flash_fwd" (and its template arguments name GEMMs, hence attention before GEMMs).
TRITON_GROUPS = (("rotary + q/k layout", "attention_forward"), ("SiLU x up", "silu"), ("RMSNorm + residual", "red_fused"))
KERNEL_GROUPS = (("attention", ("flash_fwd", "fmha", "cudnn", "sdpa")), ("GEMMs", ("nvjet", "gemm", "cutlass", "xmma")))


def kernel_groups(events: list[dict]) -> dict[str, float]:
    """Device microseconds per group, over kernel rows only (ops have CPU time and would count twice)."""
    out: dict[str, float] = {}
    for e in events:
        if e["cpu_us"] or not e["device_us"]:
            continue
        name = e["name"].lower()
        if name.startswith("triton_"):
            group = next((g for g, key in TRITON_GROUPS if key in name), "rest")
        else:
            group = next((g for g, keys in KERNEL_GROUPS if any(k in name for k in keys)), "rest")
        out[group] = out.get(group, 0.0) + e["device_us"]
    return out


def print_kernel_groups(events: list[dict], tokens: int, core_s: float) -> None:
    groups = kernel_groups(events)
    total = sum(groups.values())
    if not total:
        return
    print("| kernels | device ms | share |\n|---|---|---|")
    for group, us in sorted(groups.items(), key=lambda g: -g[1]):
        print(f"| {group} | {us / 1e3:.1f} | {100 * us / total:.1f}% |")
    print(f"kernel sum {total / 1e3:.1f} ms = {tokens / (total / 1e6):,.0f} tok/s if never idle; profiled pass "
          f"{tokens / core_s:,.0f} tok/s (GPU busy {100 * total / 1e6 / core_s:.1f}% of core time)", flush=True)


def print_error(spec: str, exc: Exception) -> None:
    print(json.dumps({"variant": spec, "error": f"{type(exc).__name__}: {exc}"[:400]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--no_tf32", action="store_true", help="fp32 matmuls without TF32 (the run's tf32: false)")
    ap.add_argument("--variants", default="eager,eager,compile:default:dyn:0")
    ap.add_argument("--profile", default="", help="variant index to profile with torch.profiler (top kernels)")
    ap.add_argument("--profile_n", type=int, default=20, help="prompts in the profiled pass")
    ap.add_argument("--json_out", type=Path, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="vendor option key=value")
    args = ap.parse_args()

    torch.set_float32_matmul_precision("highest" if args.no_tf32 else "high")  # as the runner does
    vendor = get_vendor(default_vendor())
    types_by_key = {k: tp for k, (tp, _) in fields_of(vendor.Options).items()}
    base = dict(parse_set(item, types_by_key) for item in args.overrides)
    vendor.configure(vendor.Options(**base))
    dev = vendor.device()
    params = CASE.Params(weight_dir="llama2_7b_hf", mmlu_dir="mmlu_dataset/data", few_shots=5)
    t = time.perf_counter()
    work = CASE.load_workload(params, args.data_dir, None)
    print(f"tokenized {len(work.samples)} prompts in {time.perf_counter() - t:.1f}s", flush=True)
    rng = random.Random(args.seed)
    samples = rng.sample(work.samples, min(args.n, len(work.samples)))
    t = time.perf_counter()
    synthetic = not any((args.data_dir / params.weight_dir).glob("*.safetensors"))
    model = CASE.build_model(params, args.data_dir, precision=args.precision, device=dev, synthetic=synthetic, seed=0)
    vendor.synchronize()
    print(f"model built in {time.perf_counter() - t:.1f}s (synthetic={synthetic})", flush=True)
    batch = HostBatch([s.input_ids for s in samples], dev)
    tokens = sum(batch.lengths)
    flops = 14e9
    peak = vendor.peak_flops(args.precision, not args.no_tf32).value
    rows, ref_preds, all_preds = [], None, []
    specs = [parse_variant(spec) for spec in args.variants.split(",")]
    fused_at = [k for k, v in enumerate(specs) if v.get("fuse")]
    if fused_at and any(v["kind"] == "compile" and not v.get("fuse") for v in specs[fused_at[0]:]):
        sys.exit("fused variants must come after the unfused compiled ones (fusion changes the model in place)")
    for k, (spec, v) in enumerate(zip(args.variants.split(","), specs)):
        torch._dynamo.reset()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t = time.perf_counter()
        fn = model
        if v["pack"]:
            kernel = select("cudnn" if v["cudnn"] else "flash", args.precision) if dev.type == "cuda" else None
            model.enable_packing(None if v["nocap"] else max(batch.lengths), kernel)
        model.prune_last = False
        if v["prune"]:
            model.prune_last_layer()
        if v["fuse"]:
            model.fuse_projections()
        plan = plan_packs(batch.lengths, v["pack"])
        calls = [tuple(batch.lengths[i:j]) for i, j in plan]
        if v["kind"] == "eager+warm":
            with torch.inference_mode():
                n = max(batch.lengths)
                model(torch.ones(1, n, dtype=torch.int64, device=dev), torch.tensor([n - 1], device=dev))
        elif v["kind"] == "compile":
            opts = dataclasses.replace(vendor.options, dynamo_mode=v["mode"], dynamo_dynamic=v["dynamic"],
                                       pad_multiple=v["pad"])
            tk = vendor.toolkits()["inductor"](opts, vendor)
            try:
                fn = tk.prepare(model, calls)
            except Exception as exc:  # report and go on: device time is scarce
                print_error(spec, exc)
                continue
        vendor.synchronize()
        prep = time.perf_counter() - t
        if args.profile and str(k) == args.profile:
            from torch.profiler import ProfilerActivity, profile

            small = HostBatch([s.input_ids for s in samples[:args.profile_n]], dev)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                prec = run_pass("profile", fn, small, vendor.synchronize, pack_tokens=v["pack"])
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25), flush=True)
            events = [{"name": e.key, "count": e.count, "cpu_us": e.cpu_time_total,
                       "device_us": getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)}
                      for e in prof.key_averages()]
            print_kernel_groups(events, sum(small.lengths), prec.core_s)
            if args.json_out:  # every op and kernel with device time, for offline grouping
                args.json_out.with_suffix(".profile.json").write_text(json.dumps(
                    {"variant": spec, "prompts": len(small), "tokens": sum(small.lengths), "core_s": prec.core_s,
                     "forwards": prec.forwards, "events": [e for e in events if e["device_us"]]}, indent=1))
        try:
            rec = run_pass(spec, fn, batch, vendor.synchronize, log_freq=10**9, pack_tokens=v["pack"])
        except Exception as exc:  # one failing variant must not cost the others (device time is scarce)
            print_error(spec, exc)
            continue
        if ref_preds is None:
            ref_preds = rec.predictions
        all_preds.append((spec, rec.predictions))
        agree = agreement(rec.predictions, ref_preds)[0]
        core = tokens / rec.core_s
        padded = sum(padded_length(sum(c), v.get("pad", 0)) for c in calls)
        cuda = dev.type == "cuda"
        mem = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else float("nan")
        # reserved: what the device sees in use (blocks the caching allocator keeps), e.g. fusion's old weights
        reserved = torch.cuda.max_memory_reserved(dev) / 2**30 if cuda else float("nan")
        row = dict(variant=spec, prep_s=prep, core_tps=core, whole_tps=tokens / rec.whole_s,
                   mfu=flops * core / peak if peak else None, agree=agree, pad_overhead=padded / tokens - 1,
                   max_alloc_gib=mem, max_reserved_gib=reserved,
                   recompiles=tk.report().recompiles if v["kind"] == "compile" else 0, forwards=rec.forwards)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{vendor.device_name()}, torch {torch.__version__}, {len(samples)} prompts, {tokens} tokens, "
          f"mean {tokens / len(samples):.0f}, {args.precision}")
    print("| variant | prep s | core tok/s | whole tok/s | MFU | agree | pad extra | max alloc GiB | max reserved GiB "
          "| recompiles | forwards |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
        print(f"| {r['variant']} | {r['prep_s']:.1f} | {r['core_tps']:.0f} | {r['whole_tps']:.0f} | {mfu} | "
              f"{r['agree']:.4f} | {100 * r['pad_overhead']:.1f}% | {r['max_alloc_gib']:.2f} | "
              f"{r['max_reserved_gib']:.2f} | {r['recompiles']} | {r['forwards']} |")
    print("\nSame predictions, each pair of variants:")
    for a, (name_a, pa) in enumerate(all_preds):
        for name_b, pb in all_preds[a + 1:]:
            share, differ = agreement(pa, pb)
            print(f"  {name_a} vs {name_b}: {len(pa) - differ}/{len(pa)} = {share:.4f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
