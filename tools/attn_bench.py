#!/usr/bin/env python3
"""Packed (block-diagonal causal) attention kernels side by side, on the pack layouts of the real run.

The packed inference pass spends ~10% of its time in attention (docs/results/README.md), where flash
attention's variable-length kernel reaches well under half of the card's peak on ~770-token prompts. This
times the candidates on the same inputs, one layer's attention per pack (Llama-2-7B: 32 heads x 128):

  flash_T     the nvidia vendor's ragged attention: flash attention's variable-length kernel, max length = the pack's
              length (the kernel before the bound)
  flash       the same, max length = the longest prompt (what the model does now)
  cudnn       the same through cuDNN's ragged SDPA (nvidia key packed_attention: cudnn)
  flex        FlexAttention, compiled, with a document-causal block mask built per pack
  fp32        the nvidia vendor's fp32 kernel (memory-efficient attention), for checking

Per backend: the first call over all packs (plans, compilation), then the steady time of a second and third
sweep, TFLOP/s of the causal work, and the largest difference from the first backend listed.

GPU: python tools/attn_bench.py --data_dir .devdata/data --packs 40
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.llama2_7b_mmlu import CASE  # noqa: E402
from benchmarks.llama2_7b_mmlu.packing import segment_ids  # noqa: E402
from benchmarks.harness.passes import plan_packs  # noqa: E402
from benchmarks.harness.toolkits import padded_length  # noqa: E402


def pack_inputs(lengths: list[int], pad_multiple: int, heads: int, head_dim: int, dtype, device):
    """q, k, v [T, H, D] and cu_seqlens for one pack, padded like PadRight does (one padding prompt)."""
    total = sum(lengths)
    extra = padded_length(total, pad_multiple) - total
    segs = lengths + ([extra] if extra else [])
    cu = torch.tensor([0] + segs, device=device).cumsum(0).to(torch.int32)
    t = sum(segs)
    q, k, v = (torch.randn(t, heads, head_dim, device=device, dtype=dtype) for _ in range(3))
    return q, k, v, cu, segs


def causal_flops(segs: list[int], heads: int, head_dim: int) -> float:
    # QK^T and PV, 2 flops per multiply-add each, half the square (causal)
    return sum(2 * 2 * n * n / 2 * heads * head_dim for n in segs)


def make_backend(name: str, longest: int):
    if name in ("flash_T", "flash", "cudnn", "fp32"):
        # The vendor's ragged attention kernels (vendors/nvidia/ragged.py), as the model calls them.
        from benchmarks.llama2_7b_mmlu.packing import masked_attention
        from vendors.nvidia.ragged import select

        def run(q, k, v, cu, segs):
            kernel = select("cudnn" if name == "cudnn" else "flash", "fp32" if name == "fp32" else "fp16")
            if not q.is_cuda:  # for checking off the GPU: the case's own masked fallback
                kernel = masked_attention
            bound = q.shape[0] if name == "flash_T" else longest
            if name == "fp32":
                return kernel(q.float(), k.float(), v.float(), cu, cu, bound, bound, True, None).to(q.dtype)
            return kernel(q, k, v, cu, cu, bound, bound, True, None)
        return run
    if name == "flex":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        # One static-shape kernel per pack length: at dynamo's default limit of 8 recompiles the rest would run
        # flex's unfused fallback, which materializes the scores (the 2026-11-28 H200 log's flex row did).
        limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
        setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 1024))
        flex = torch.compile(flex_attention, dynamic=False)

        def run(q, k, v, cu, segs):
            seg = segment_ids(cu, q.shape[0])

            def document_causal(b, h, q_idx, kv_idx):
                return (seg[q_idx] == seg[kv_idx]) & (q_idx >= kv_idx)

            mask = create_block_mask(document_causal, None, None, q.shape[0], q.shape[0], device=q.device)
            out = flex(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], block_mask=mask)
            return out[0].transpose(0, 1)
        return run
    sys.exit(f"unknown backend {name!r}; expected flash_T, flash, cudnn, flex or fp32")


def sweep(run, packs, sync) -> tuple[float, list[torch.Tensor]]:
    outs = []
    sync()
    t0 = time.perf_counter()
    for q, k, v, cu, segs in packs:
        outs.append(run(q, k, v, cu, segs))
    sync()
    return time.perf_counter() - t0, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_dir", type=Path, required=True)
    ap.add_argument("--packs", type=int, default=40)
    ap.add_argument("--pack_tokens", type=int, default=8192)
    ap.add_argument("--pad_multiple", type=int, default=128)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--head_dim", type=int, default=128)
    ap.add_argument("--backends", default="flash_T,flash,cudnn,flex")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    params = CASE.Params(weight_dir="llama2_7b_hf", mmlu_dir="mmlu_dataset/data", few_shots=5)
    lengths = [len(s.input_ids) for s in CASE.load_workload(params, args.data_dir, None).samples]
    plan = plan_packs(lengths, args.pack_tokens)
    random.Random(args.seed).shuffle(plan)
    torch.manual_seed(args.seed)
    packs = [pack_inputs(lengths[i:j], args.pad_multiple, args.heads, args.head_dim, dtype, device)
             for i, j in plan[: args.packs]]
    longest = max(lengths)
    flops = sum(causal_flops(p[4], args.heads, args.head_dim) for p in packs)
    tokens = sum(p[0].shape[0] for p in packs)
    print(f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}, "
          f"{len(packs)} packs, {tokens} tokens, {tokens / len(packs):.0f} per pack, longest prompt {longest}")
    print("| backend | first sweep ms | steady ms per pack | TFLOP/s | max diff vs reference |")
    print("|---|---|---|---|---|")
    reference = None
    for name in args.backends.split(","):
        run = make_backend(name, longest)
        try:
            first, outs = sweep(run, packs, sync)
            steady = min(sweep(run, packs, sync)[0] for _ in range(2))
        except Exception as exc:  # one failing backend must not cost the others (device time is scarce)
            print(f"| {name} | error: {type(exc).__name__}: {str(exc)[:200]} | | | |", flush=True)
            continue
        if reference is None:
            reference = outs
        diff = max(float((o.float() - r.float()).abs().max()) for o, r in zip(outs, reference))
        print(f"| {name} | {1e3 * first:.1f} | {1e3 * steady / len(packs):.3f} | {flops / steady / 1e12:.0f} | "
              f"{diff:.2e} |", flush=True)


if __name__ == "__main__":
    main()
